"""The dashboard starts, the admin logs in, and the navigation shows the pages."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_idle


def test_admin_logs_in_and_sees_overview(page: Page, dashboard: Dashboard) -> None:
    login(page, dashboard.url, ADMIN[0], "not-the-password")
    expect(page.get_by_test_id("stAlert")).to_contain_text("Wrong username or password.")

    login(page, dashboard.url, *ADMIN)

    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link", name="Overview", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Admin", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Log in")).to_have_count(0)

    goto_page(page, "Jobs")
    expect(page).to_have_url(f"{dashboard.url}/jobs")


def test_the_first_request_after_a_start_at_a_page_s_address_shows_the_login(page: Page, dashboard: Dashboard) -> None:
    # Streamlit serves a folder named pages/ beside the script as a v1 multipage app until the script's first
    # run, so with one this address would open that folder's admin.py without app.py's login gate.
    page.goto(f"{dashboard.url}/admin")
    wait_idle(page)
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Admin")).to_have_count(0)
