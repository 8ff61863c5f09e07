"""Issue 19 item 4 in a real browser: Admin forms keep their input on an error; a token's secret is shown
every time (20 creations), stays until dismissed and has a copy button."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun
from tests.support.paths import ARTIFACTS


def test_add_user_form_keeps_input_after_a_validation_error(page: Page, dashboard: Dashboard) -> None:
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Admin")
    page.get_by_label("New username").fill("dave")
    page.get_by_label("Initial password", exact=True).fill("short")
    page.get_by_role("button", name="Add user").click()
    wait_rerun(page)
    expect(page.get_by_text("at least 8 are required")).to_be_visible()
    expect(page.get_by_label("New username")).to_have_value("dave")  # before: the form was wiped
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin_form_kept_after_error.png"))
    page.get_by_label("Initial password", exact=True).fill("dave-pass-123")
    page.get_by_role("button", name="Add user").click()
    wait_rerun(page)
    expect(page.get_by_text("User dave (viewer) added.")).to_be_visible()
    expect(page.get_by_label("New username")).to_have_value("")


def test_token_secret_is_shown_every_time_of_twenty(page: Page, dashboard: Dashboard) -> None:
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Admin")
    page.get_by_role("tab", name="API tokens").click()
    shown: list[str] = []
    for n in range(20):
        # (a rerun's leftover element can sit beside the new one for a moment: wait until one remains)
        expect(page.get_by_label("Token name")).to_have_count(1)
        page.get_by_label("Token name").fill(f"browser-{n}")
        page.get_by_role("button", name="Create token").click()
        wait_rerun(page)
        expect(page.get_by_text(f"Token browser-{n} created")).to_be_visible()
        box = page.get_by_test_id("stCode").filter(has_text="lo_")
        expect(box).to_have_count(1)
        secret = box.inner_text().strip()
        assert secret.startswith("lo_") and secret not in shown, f"creation {n}: no new secret on screen"
        shown.append(secret)
        expect(page.get_by_label("Token name")).to_have_value("")
        if n == 0:
            box.hover()  # Streamlit's copy button appears on hover
            expect(box.get_by_role("button")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "admin_token_shown.png"))
        page.get_by_role("button", name="I have copied it, hide the token").click()
        wait_rerun(page)
        expect(page.get_by_test_id("stCode").filter(has_text="lo_")).to_have_count(0)
