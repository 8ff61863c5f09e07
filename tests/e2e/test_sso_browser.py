"""Issue 15 item 2: single sign-on through a local OpenID Connect provider (tests/support/oidc.py: discovery,
authorization code with PKCE, RS256-signed ID token) creates a viewer; an admin promotes them on the Admin page;
a deactivation blocks their next SSO login."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from core.accounts import sessions
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_idle, wait_rerun
from tests.support.oidc import OidcProvider
from tests.support.paths import ARTIFACTS

EMAIL = "ada@example.com"


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider(client_id="leanops-dashboard", client_secret="idp-secret-for-the-test") as provider:
        provider.user = {"sub": "ada-0001", "email": EMAIL, "email_verified": True, "name": "Ada"}
        yield provider


@pytest.fixture
def sso_dashboard(start_dashboard: Callable[..., Dashboard], idp: OidcProvider) -> Dashboard:
    return start_dashboard(LEANOPS_SCHEDULER="off", LEANOPS_OIDC_ISSUER=idp.issuer,
                           LEANOPS_OIDC_CLIENT_ID="leanops-dashboard",
                           LEANOPS_OIDC_CLIENT_SECRET="idp-secret-for-the-test",
                           LEANOPS_OIDC_PROVIDER_NAME="Test IdP", LEANOPS_OIDC_ALLOWED_DOMAINS="example.com")


def sso_login(page: Page, url: str) -> None:
    page.goto(url)
    wait_idle(page)
    link = page.get_by_role("button", name="Sign in with Test IdP")
    expect(link).to_be_visible()
    expect(page.get_by_label("Username", exact=True)).to_be_visible()  # beside the local login
    with page.expect_navigation(url=f"{url}/**"):
        link.click()
    wait_idle(page)


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_rerun(page)


def admin_changes(page: Page, url: str, action: Callable[[Page], None]) -> None:
    login(page, url, *ADMIN)
    goto_page(page, "Admin")
    choose(page, "User", EMAIL)
    action(page)


def test_sso_creates_a_viewer_an_admin_promotes_and_deactivation_blocks_the_next_sso_login(
        page: Page, sso_dashboard: Dashboard, idp: OidcProvider, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    url = sso_dashboard.url
    sso_login(page, url)
    expect(page.get_by_text(f"Signed in as {EMAIL} · viewer")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == sessions.COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"  # the same session as a password login
    assert not [c for c in page.context.cookies() if c["name"] == "leanops_oidc"]  # the flow's cookie is gone
    assert idp.token_requests and idp.token_requests[-1]["code_verifier"]  # PKCE went to the token endpoint
    page.screenshot(path=str(ARTIFACTS / "sso-first-login.png"), full_page=True)

    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

    def promote(p: Page) -> None:
        choose(p, "New role", "approver")
        p.get_by_role("button", name="Change role").click()
        wait_rerun(p)
        expect(p.get_by_text(f"{EMAIL} is now approver")).to_be_visible()

    admin_changes(admin, url, promote)

    # the role change ended Ada's session; her next SSO login keeps the role the admin gave
    page.reload()
    wait_idle(page)
    expect(page.get_by_label("Username", exact=True)).to_be_visible()
    sso_login(page, url)
    expect(page.get_by_text(f"Signed in as {EMAIL} · approver")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "sso-promoted.png"), full_page=True)

    def deactivate(p: Page) -> None:
        p.get_by_role("button", name="Deactivate").click()
        wait_rerun(p)

    admin.reload()
    wait_idle(admin)
    choose(admin, "User", EMAIL)
    deactivate(admin)
    expect(admin.get_by_role("button", name="Activate", exact=True)).to_be_visible()
    admin.screenshot(path=str(ARTIFACTS / "sso-admin-deactivated.png"), full_page=True)
    admin.context.close()

    page.reload()
    wait_idle(page)
    expect(page.get_by_label("Username", exact=True)).to_be_visible()  # the live session ended at once
    sso_login(page, url)
    expect(page.get_by_text(f"Your LeanOps account {EMAIL} is deactivated")).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "sso-deactivated-refused.png"), full_page=True)


def test_an_address_outside_the_allowed_domains_is_refused_and_nothing_created(
        page: Page, sso_dashboard: Dashboard, idp: OidcProvider) -> None:
    idp.user = {"sub": "eve-1", "email": "eve@elsewhere.org", "email_verified": True}
    sso_login(page, sso_dashboard.url)
    expect(page.get_by_text("eve@elsewhere.org may not sign in to this dashboard")).to_be_visible()
    # a forged callback (no sign-in under way in this browser) is refused, not followed
    page.goto(f"{sso_dashboard.url}/auth/oidc/callback?code=stolen&state=guess")
    wait_idle(page)
    expect(page.get_by_text("The Test IdP sign-in expired or was started in another browser")).to_be_visible()
    assert not idp.token_requests or all(r.get("code") != "stolen" for r in idp.token_requests)
    login(page, sso_dashboard.url, *ADMIN)
    goto_page(page, "Admin")
    page.get_by_role("combobox", name="User", exact=True).click()
    expect(page.get_by_role("option", name=ADMIN[0], exact=True)).to_be_visible()
    expect(page.get_by_role("option", name="eve@elsewhere.org")).to_have_count(0)
