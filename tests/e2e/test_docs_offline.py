"""Issue 19 item 9: the API's /docs (Swagger UI) and /redoc render with no network but loopback.

FastAPI's own pages load their scripts from a CDN, so behind a proxy or air-gapped they were a white
page. The browser here reaches nothing outside 127.0.0.1: its proxy is a dead port (loopback bypasses
it) and every other request is aborted and recorded.
"""

from __future__ import annotations

from urllib.parse import urlparse

from playwright.sync_api import Browser, Route, expect

from api.app import create_app
from core.settings import get_settings
from tests.support.api import live_server
from tests.support.paths import ARTIFACTS


def test_docs_render_with_the_network_off(browser: Browser, settings) -> None:
    app = create_app(get_settings(**(settings.model_dump() | {"api_docs_public": True})))
    outside: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context = browser.new_context(proxy={"server": "http://127.0.0.1:9", "bypass": "127.0.0.1,localhost"},
                                  viewport={"width": 1400, "height": 1000})
    context.route("**/*", loopback_only)
    page = context.new_page()
    try:
        with live_server(app) as url:
            page.goto(f"{url}/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("LeanOps API")
            expect(page.locator(".swagger-ui .opblock").first).to_be_visible()  # the routes, from /openapi.json
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs-offline-swagger.png"))
            assert outside == [], f"/docs asked for outside resources: {outside}"

            # ReDoc renders too; its bundle still asks for its own footer logo from a CDN (cosmetic, aborted).

            page.goto(f"{url}/redoc")
            expect(page.locator("redoc h1, [role='main'] h1").first).to_contain_text("LeanOps API")
            page.screenshot(path=str(ARTIFACTS / "docs-offline-redoc.png"))
            assert [u for u in outside if not u.endswith("/logo-mini.svg")] == [], outside
    finally:
        context.close()
