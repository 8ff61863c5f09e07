"""The generated admin password: shown once by `cli.py init`, good for one login that must replace it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import Dashboard, login, wait_rerun


@pytest.mark.parametrize("dashboard", [{"LEANOPS_ADMIN_PASSWORD": None}], indirect=True)
def test_first_login_forces_a_new_password_and_the_old_one_stops_working(page: Page, dashboard: Dashboard) -> None:
    line = next(x for x in dashboard.init_output.splitlines() if x.startswith("admin user: admin  password: "))
    generated = line.split("password: ")[1].split()[0]

    login(page, dashboard.url, "admin", generated)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # no page to go to before the change

    # A new browser session (Streamlit sessions end on reload) and a fresh login: still forced first
    login(page, dashboard.url, "admin", generated)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("Current password", exact=True).fill(generated)
    page.get_by_label("New password", exact=True).fill("my-own-pass-123")
    page.get_by_label("Repeat the new password", exact=True).fill("my-own-pass-123")
    page.get_by_role("button", name="Change password").click()
    wait_rerun(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="Admin", exact=True)).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    wait_rerun(page)
    login(page, dashboard.url, "admin", generated)
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    login(page, dashboard.url, "admin", "my-own-pass-123")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert generated not in dashboard.log.read_text(encoding="utf-8", errors="replace")
