"""Issue 15 item 1: a signed-in browser stays signed in across reloads, tabs and a dashboard restart,
on the page it was on, until logout, which signs out every tab and kills every copy of the cookie."""

from __future__ import annotations

import subprocess

from playwright.sync_api import Browser, Page, expect

from core.accounts import sessions
from tests.e2e.conftest import wait_healthy
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_idle, wait_rerun
from tests.support.paths import ARTIFACTS, ROOT


def restart(dashboard: Dashboard) -> None:
    """Stop the dashboard process and start it again: same workspace, same port, same command."""
    dashboard.stop()
    args = dashboard.process.args
    with dashboard.log.open("ab") as out:
        dashboard.process = subprocess.Popen(args, cwd=ROOT, env=dashboard.env, stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(dashboard)


def signed_in_on(page: Page, url: str, heading: str) -> None:
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(page.get_by_label("Username", exact=True)).to_have_count(0)
    assert page.url == url


def session_cookie(page: Page) -> dict:
    return next(c for c in page.context.cookies() if c["name"] == sessions.COOKIE)


def test_a_session_survives_reloads_tabs_and_a_restart_until_logout(page: Page, dashboard: Dashboard,
                                                                     browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{dashboard.url}/jobs")  # a bookmark, signed out: the login form, not "Page not found"
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    expect(page.get_by_text("Page not found")).to_have_count(0)
    login(page, dashboard.url, *ADMIN)
    signed_in_on(page, f"{dashboard.url}/", "Overview")

    cookie = session_cookie(page)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie").find(cookie["value"]) == -1  # no script on the page can read it
    assert cookie["value"] not in page.content()

    for title, path in (("Registry", "registry"), ("Jobs", "jobs"), ("Audit log", "audit")):
        goto_page(page, title)
        page.reload()
        wait_idle(page)
        signed_in_on(page, f"{dashboard.url}/{path}", title)
    page.screenshot(path=str(ARTIFACTS / "sessions-after-reload.png"), full_page=True)

    other = page.context.new_page()  # a second tab of the same browser
    other.goto(f"{dashboard.url}/registry")
    wait_idle(other)
    signed_in_on(other, f"{dashboard.url}/registry", "Registry")

    restart(dashboard)
    page.reload()
    wait_idle(page, timeout=60_000)
    signed_in_on(page, f"{dashboard.url}/audit", "Audit log")
    page.screenshot(path=str(ARTIFACTS / "sessions-after-restart.png"), full_page=True)

    copy = browser.new_context()  # the cookie's value copied into another browser works, for now
    copy.add_cookies([{"name": sessions.COOKIE, "value": cookie["value"], "url": dashboard.url}])
    stolen = copy.new_page()
    stolen.goto(f"{dashboard.url}/jobs")
    wait_idle(stolen)
    signed_in_on(stolen, f"{dashboard.url}/jobs", "Jobs")
    copy.close()

    page.get_by_role("button", name="Log out").click()
    wait_rerun(page)
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    page.reload()
    wait_idle(page)
    expect(page.get_by_label("Username", exact=True)).to_be_visible()  # still out after a reload

    # The other tab (connected since before the restart) is signed out at its next action.
    other.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview", exact=True).click()
    wait_rerun(other)
    expect(other.get_by_label("Username", exact=True)).to_be_visible()
    expect(other.get_by_text("You were signed out")).to_be_visible()
    other.screenshot(path=str(ARTIFACTS / "sessions-other-tab-signed-out.png"), full_page=True)

    copy = browser.new_context()  # and the copied value no longer signs anyone in
    copy.add_cookies([{"name": sessions.COOKIE, "value": cookie["value"], "url": dashboard.url}])
    stolen = copy.new_page()
    stolen.goto(f"{dashboard.url}/jobs")
    wait_idle(stolen)
    expect(stolen.get_by_label("Username", exact=True)).to_be_visible()
    expect(stolen.get_by_role("heading", name="Jobs")).to_have_count(0)
    copy.close()
