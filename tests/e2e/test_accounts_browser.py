"""Issue 2's journey: the admin adds a viewer; the viewer sees no Admin page and core refuses them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from core import audit
from core.accounts import auth
from core.actors import Actor
from core.errors import PermissionDenied
from core.platform.database import transaction
from core.settings import get_settings
from db.models import AuditEvent, User
from db.session import make_engine, make_session_factory
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun

ROOT = Path(__file__).resolve().parents[2]


def test_admin_adds_viewer_who_cannot_administer(page: Page, dashboard: Dashboard) -> None:
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Admin")
    page.get_by_label("New username").fill("vera")
    page.get_by_label("Initial password", exact=True).fill("vera-pass-123")
    page.get_by_role("button", name="Add user").click()
    wait_rerun(page)
    expect(page.get_by_text("User vera (viewer) added.")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    wait_rerun(page)
    expect(page.get_by_text("You are logged out.")).to_be_visible()

    login(page, dashboard.url, "vera", "vera-pass-123")
    # the admin set vera's first password: her first login replaces it before anything else
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    page.get_by_label("Current password", exact=True).fill("vera-pass-123")
    page.get_by_label("New password", exact=True).fill("vera-own-pass-456")
    page.get_by_label("Repeat the new password", exact=True).fill("vera-own-pass-456")
    page.get_by_role("button", name="Change password").click()
    wait_rerun(page)
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Overview", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    page.goto(f"{dashboard.url}/admin")  # typing the URL does not open it either
    page.wait_for_timeout(1500)
    expect(page.get_by_role("heading", name="Admin")).to_have_count(0)

    # The same viewer, calling core directly, is refused — and each refusal is in the audit log.
    settings = get_settings(home=dashboard.home, db_url=f"sqlite:///{dashboard.home / 'leanops.db'}")
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    with factory() as s:
        vera = auth.current_actor(s, s.query(User).filter_by(username="vera").one().id)
    assert vera == Actor("vera", "viewer", "user", vera.user_id)
    attempts = [
        lambda s: auth.create_user(s, actor=vera, username="mallory", role="admin", password="password-123"),
        lambda s: auth.set_role(s, actor=vera, username="vera", role="admin"),
        lambda s: auth.create_token(s, actor=vera, role="admin"),
    ]
    for attempt in attempts:
        try:
            with transaction(factory) as s:
                attempt(s)
        except PermissionDenied as exc:
            assert "vera has role 'viewer'" in str(exc)
        else:
            raise AssertionError("a viewer was allowed an admin operation")
    with factory() as s:
        denied = s.query(AuditEvent).filter_by(actor="vera", action="permission.denied").count()
        assert s.query(User).filter_by(username="mallory").count() == 0
        assert audit.verify(s).ok
    engine.dispose()
    assert denied == len(attempts)

    result = subprocess.run([sys.executable, "cli.py", "audit", "verify", "--json"], cwd=ROOT, env=dashboard.env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
