"""In a real browser: pick the demo dataset, its target and a random forest, launch, watch the progress
move without reloading, and read the run's metrics, confusion matrix and feature importance; then a
search run registers its best candidate."""

from __future__ import annotations

import subprocess
import sys
import time

from playwright.sync_api import Page, expect

from core.workspace.demo import churn_frame
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_idle, wait_rerun
from tests.support.paths import ARTIFACTS, ROOT


def select(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_rerun(page)


def fill_number(page: Page, label: str, value: int) -> None:
    field = page.get_by_test_id("stNumberInput").filter(has=page.get_by_text(label, exact=True)).locator("input")
    field.fill(str(value))
    field.press("Enter")
    wait_rerun(page)


def watch_progress(page: Page, timeout: float = 180) -> list[str]:
    """The live panel's progress texts until the job leaves it (the page is never reloaded)."""
    seen: list[str] = []
    bars = page.get_by_test_id("stProgress")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bars.count():
            try:
                text = bars.first.inner_text(timeout=2_000)
            except Exception:  # noqa: BLE001 - the bar went away between count() and inner_text()
                continue
            if not seen or seen[-1] != text:
                seen.append(text)
        elif seen:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"the job did not finish in {timeout} s; progress seen: {seen}")


def test_launch_watch_and_inspect_a_training_run(page: Page, dashboard: Dashboard) -> None:
    csv = dashboard.home / "churn.csv"  # the demo data without init --demo's trained model
    churn_frame().to_csv(csv, index=False)
    demo = subprocess.run([sys.executable, "cli.py", "dataset", "add", "churn", str(csv)], cwd=ROOT,
                          env=dashboard.env, capture_output=True, text=True, timeout=180)
    assert demo.returncode == 0, demo.stderr
    page.set_viewport_size({"width": 1400, "height": 3200})  # screenshots catch only the viewport
    navigations: list[str] = []
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Training")
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    select(page, "Dataset", "churn")
    select(page, "Target column", "churn")
    select(page, "Model", "Random forest")
    expect(page.get_by_role("combobox", name="Task", exact=True)).to_have_value("classification")
    select(page, "Sensitive column (optional)", "gender")
    page.get_by_role("button", name="Launch training").click()
    wait_rerun(page)
    expect(page.get_by_text("Queued training job #1 on churn:1")).to_be_visible()

    stages = watch_progress(page)
    assert len(stages) >= 3, stages  # queued → … → fitting/evaluating/logging, all without a reload
    later = ("loading", "checking", "fitting", "evaluating", "logging", "registering")
    assert any(word in s for s in stages for word in later), stages
    assert navigations == [], navigations
    wait_idle(page)
    expect(page.get_by_text("Job #1 registered churn version 1.")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Run 1 · check_circle succeeded")).to_be_visible()
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible()
    assert page.get_by_test_id("stMetric").filter(has_text="f1").count() == 1
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.filter(has_text="Confusion matrix")).to_be_visible()
    expect(charts.filter(has_text="Permutation importance")).to_be_visible()
    expect(page.get_by_text("Fairness on gender")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "training-run-detail.png"), full_page=True)

    # A grid search: each candidate is cross-validated in turn, then the best one is registered.
    select(page, "Model", "Logistic / ridge regression")
    select(page, "Hyperparameter search", "grid")
    fill_number(page, "Candidates", 3)
    page.get_by_role("button", name="Launch training").click()
    wait_rerun(page)
    stages = watch_progress(page)
    assert len(stages) >= 2, stages  # (a quick search may finish its candidates between two refreshes)
    wait_idle(page)
    expect(page.get_by_text("Job #2 registered churn version 2.")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Grid search: 3 candidates, 3-fold CV; the best was registered")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "training-search-run.png"), full_page=True)
