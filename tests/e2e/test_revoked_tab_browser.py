"""Sessions end everywhere at once (issue 27 item 2): a tab whose session an admin revoked shows the login page
at its live panel's next refresh (no reload, no click), and a Cancel clicked in it before that cancels nothing."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun
from tests.support.paths import ARTIFACTS, ROOT
from tests.support.waiting import wait_until

SCIENTIST = ("sci", "sci-pass-12345")
SHOTS = ARTIFACTS


def _jobs(dashboard: Dashboard) -> list[tuple[int, str]]:
    with sqlite3.connect(dashboard.home / "leanops.db") as conn:
        return list(conn.execute("SELECT id, status FROM jobs WHERE kind = 'diagnostic.sleep' ORDER BY id"))


def _revoked(dashboard: Dashboard) -> bool:
    with sqlite3.connect(dashboard.home / "leanops.db") as conn:
        return bool(conn.execute("SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE "
                                 "u.username = ? AND s.revoked_at IS NOT NULL", (SCIENTIST[0],)).fetchone()[0])


def _cancellations(dashboard: Dashboard) -> int:
    with sqlite3.connect(dashboard.home / "leanops.db") as conn:
        return int(conn.execute("SELECT count(*) FROM audit_events WHERE action = 'job.cancelled'").fetchone()[0])


def test_a_revoked_tab_shows_the_login_page_at_its_next_refresh_and_its_cancel_does_nothing(
        page: Page, browser: Browser, start_dashboard) -> None:
    dashboard = start_dashboard(LEANOPS_SCHEDULER="off")  # no worker: the job stays queued, its Cancel shown
    added = subprocess.run([sys.executable, "cli.py", "user", "add", SCIENTIST[0], "--role", "scientist",
                            "--keep-password"], cwd=ROOT,
                           env=dashboard.env, input=SCIENTIST[1] + "\n", capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr

    login(page, dashboard.url, *SCIENTIST)
    goto_page(page, "Jobs")
    page.get_by_text("Check the workers: run a diagnostic job").click()
    queue = page.get_by_role("button", name="Queue diagnostic job")
    for _ in range(3):  # a click that lands while the live panel reruns can be dropped by the browser
        queue.click()
        wait_rerun(page)
        try:
            wait_until(lambda: bool(_jobs(dashboard)), timeout=10, every=0.2)
            break
        except AssertionError:
            continue
    cancel = page.get_by_role("button", name="Cancel", exact=True)
    expect(cancel).to_be_visible(timeout=15_000)
    assert [status for _, status in _jobs(dashboard)] == ["queued"]

    admin = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
    login(admin, dashboard.url, *ADMIN)
    goto_page(admin, "Admin")
    admin.get_by_role("tab", name="Sessions").click()
    box = admin.get_by_role("combobox", name="Session to revoke", exact=True)
    box.scroll_into_view_if_needed()
    box.click()
    admin.get_by_role("option", name=re.compile(rf"^\d+ · {SCIENTIST[0]} · ")).click()
    wait_rerun(admin)
    admin.get_by_role("button", name="Revoke session").click()
    wait_rerun(admin)
    wait_until(lambda: _revoked(dashboard), timeout=15, every=0.2)
    admin.context.close()

    # the revoked tab acts at once, before its live panel refreshed: the click must write nothing
    try:
        cancel.click(timeout=1_500)
    except PlaywrightTimeout:
        pass  # the panel refreshed first and the button is already gone: nothing to click
    # within one refresh of the live panel (every 2 s), without a reload: the login page
    expect(page.get_by_label("Username", exact=True)).to_be_visible(timeout=15_000)
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    expect(page.get_by_text("You were signed out")).to_be_visible()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "revoked-tab-login.png"), full_page=True)
    assert [status for _, status in _jobs(dashboard)] == ["queued"], "the revoked tab's Cancel acted"
    assert _cancellations(dashboard) == 0
