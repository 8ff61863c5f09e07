"""The Inventory page in a real browser: an overdue review of a high-risk model shows in red and links to the
model on the Registry; recording the review on the page clears it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from core.settings import get_settings
from db.session import make_engine, make_session_factory
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_idle, wait_rerun
from tests.pages.test_inventory_page import overdue_model
from tests.support.paths import ARTIFACTS

SHOTS = ARTIFACTS  # test-artifacts/, kept by CI


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


@pytest.mark.parametrize("dashboard", [{"LEANOPS_SCHEDULER": "off"}], indirect=True)
def test_inventory_shows_an_overdue_review_in_red_and_recording_it_clears(page: Page, dashboard: Dashboard) -> None:
    settings = get_settings(home=dashboard.home)
    engine = make_engine(settings.db_url)
    try:
        overdue_model(make_session_factory(engine), settings)
    finally:
        engine.dispose()

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Inventory")
    overdue = page.get_by_text(re.compile(r"OVERDUE since \d{4}-\d\d-\d\d"))
    expect(overdue).to_be_visible()
    red, green, blue = map(int, re.findall(r"\d+", overdue.evaluate("e => getComputedStyle(e).color"))[:3])
    assert red > 150 and green < 100 and blue < 100, (red, green, blue)  # red words, not only a word
    link = page.get_by_role("link", name="churn", exact=True).first
    assert link.get_attribute("href") == "/registry?model=churn"
    _shot(page, "inventory-overdue.png")

    page.get_by_label("Review notes").fill("holdout, live accuracy, drift and the gender gap looked at")
    page.get_by_role("button", name="Record review").click()
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"OVERDUE since"))).to_have_count(0)
    expect(page.get_by_text(re.compile(r"continue by admin"))).to_be_visible()
    _shot(page, "inventory-reviewed.png")

    link = page.get_by_role("link", name="churn", exact=True).first
    if link.get_attribute("target") == "_blank":  # Streamlit opens Markdown links in a new tab
        with page.context.expect_page() as opened:
            link.click()
        registry = opened.value
    else:
        link.click()
        registry = page
    registry.wait_for_url(re.compile(r"/registry\?model=churn"), wait_until="commit")
    wait_idle(registry, timeout=60_000)
    expect(registry.get_by_role("heading", name="Registry")).to_be_visible()
