"""Issue 5's journey in a real browser: a failing version is refused, a passing one promoted with one
click, `Roll back` restores the previous champion, and the timeline shows all three moves with actors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun

ROOT = Path(__file__).resolve().parents[2]


def cli(dashboard: Dashboard, *args: str) -> dict:
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=dashboard.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def choose(page: Page, label: str, option: str) -> None:
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    box.scroll_into_view_if_needed()  # a click that has to scroll first does not open the menu
    box.get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_rerun(page)


def test_promote_refuse_rollback_and_timeline(page: Page, dashboard: Dashboard) -> None:
    demo = cli(dashboard, "init", "--demo")  # v1: the demo random forest, promoted by system:demo
    assert demo["demo_model"]["aliases"] == {"champion": 1}
    for model in ("logistic_regression", "dummy"):  # v2 beats v1 by > 2 % F1; v3 is below the F1 gate
        cli(dashboard, "train", "--dataset", "churn", "--target", "churn", "--model", model, "--sensitive", "gender")

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Registry")
    expect(page.get_by_role("heading", name="Versions of churn")).to_be_visible(timeout=60_000)

    # The newest version is shown first: v3, the dummy baseline, below the F1 gate.
    expect(page.get_by_text("version 3 (dummy)")).to_be_visible()
    page.get_by_role("button", name="Promote to production").click()
    wait_rerun(page)
    page.get_by_role("button", name="Yes, promote").click()  # a move asks first
    wait_rerun(page)
    refused = page.get_by_test_id("stAlert").filter(has_text="cannot be promoted")  # below the question asked
    expect(refused).to_contain_text("metric f1")
    # the gate value as people read it (issue 19): "metric f1: 0.412 (needs …)", not 0.41234567890123456
    expect(refused).to_contain_text(re.compile(r"metric f1: 0\.\d{1,3} \(needs"))

    choose(page, "Version", "v2")
    page.get_by_role("button", name="Promote to production").click()
    wait_rerun(page)
    page.get_by_role("button", name="Yes, promote").click()  # a move asks first
    wait_rerun(page)
    expect(page.get_by_text("v2 is now the champion of churn.")).to_be_visible()

    page.get_by_role("button", name="Roll back").click()
    wait_rerun(page)
    page.get_by_role("button", name="Yes, roll back").click()  # a move asks first
    wait_rerun(page)
    expect(page.get_by_text("churn rolled back.")).to_be_visible()
    timeline = page.get_by_test_id("stTable").last
    expect(timeline.locator("tbody tr")).to_have_count(3)
    for text in ("rollback", "promote", "admin", "system:demo", "v1", "v2"):
        expect(timeline).to_contain_text(text)
    page.screenshot(path=str(ROOT / "test-artifacts" / "registry-timeline.png"), full_page=True)

    from mlflow import MlflowClient

    uri = f"sqlite:///{dashboard.home / 'mlflow.db'}"
    champion = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias("churn", "champion")
    assert int(champion.version) == 1, "MLflow's own alias agrees with the page"
