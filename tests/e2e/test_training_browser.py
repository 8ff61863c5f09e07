"""In a real browser: pick the demo dataset, its target and a random forest, launch, watch the progress
move without reloading, and read the run's metrics, confusion matrix and feature importance; then a
search run registers its best candidate."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

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
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Training")
    # The URL follows the selection (issue 26: /training?run=1), but the page is never reloaded: a mark set on
    # this document now is still there once the run is done.
    page.evaluate("window.__sameDocument = true")

    select(page, "Dataset", "churn")
    select(page, "Target column", "churn")
    select(page, "Model", "Random forest")
    expect(page.get_by_role("combobox", name="Task", exact=True)).to_have_value("classification")
    select(page, "Sensitive column (optional)", "gender")
    page.get_by_role("button", name="Launch training").click()
    wait_rerun(page)
    # Job numbers are not assumed: the dashboard's scheduler may queue a job of its own first (the hourly
    # prediction compaction, at minute 07).
    queued = page.get_by_text(re.compile(r"Queued training job #\d+ on churn:1"))
    expect(queued).to_be_visible()
    job = int(re.search(r"#(\d+)", queued.inner_text()).group(1))

    stages = watch_progress(page)
    assert len(stages) >= 3, stages  # queued → … → fitting/evaluating/logging, all without a reload
    later = ("loading", "checking", "fitting", "evaluating", "logging", "registering")
    assert any(word in s for s in stages for word in later), stages
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded while the run progressed"
    wait_idle(page)
    expect(page.get_by_text(f"Job #{job} registered churn version 1. Its run (1) is shown below.")) \
        .to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name=re.compile(r"^churn v1 · random forest · f1 0\.\d+ · \d+ s ago"))) \
        .to_be_visible()
    expect(page.get_by_text(f"Run 1 · ran as job #{job} · registered churn v1")).to_be_visible()
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
    expect(page.get_by_text(re.compile(r"Job #\d+ registered churn version 2\. Its run \(2\) is shown below\."))) \
        .to_be_visible(timeout=30_000)
    expect(page.get_by_text("Grid search: 3 candidates, 3-fold CV; the best was registered")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "training-search-run.png"), full_page=True)


def cli(dashboard: Dashboard, *args: str) -> None:
    done = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=dashboard.env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("dashboard", [{"LEANOPS_MLFLOW_UI_URL": "http://mlflow.example:5000/"}], indirect=True)
def test_runs_table_and_parameter_diff(page: Page, dashboard: Dashboard) -> None:
    """Issue 19 items 7–8: runs named by version, a column chooser, only the parameters that differ (in
    words), a compare table that fits 1,400 px, a link to MLflow's UI, and a pick that survives reruns."""
    csv = dashboard.home / "churn.csv"
    churn_frame().to_csv(csv, index=False)
    cli(dashboard, "dataset", "add", "churn", str(csv))
    cli(dashboard, "train", "--dataset", "churn", "--target", "churn", "--model", "linear", "--param", "C=0.5")
    cli(dashboard, "train", "--dataset", "churn", "--target", "churn", "--model", "linear", "--seed", "7")
    page.set_viewport_size({"width": 1400, "height": 3000})
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Training")

    runs = page.get_by_test_id("stDataFrame").first
    expect(runs).to_contain_text("churn v2")
    expect(runs).to_contain_text("logistic regression")
    header = runs.locator("th", has_text=re.compile(r"^C$"))
    for _ in range(3):  # a pick made while the page is still rerunning can be lost; pick again then
        wait_idle(page, 60_000)  # under load a whole-page rerun (the page greyed out) takes seconds
        page.get_by_role("combobox", name="Columns", exact=True).click()
        option = page.get_by_role("option", name="C", exact=True)  # a hyperparameter as a column
        try:
            option.click(timeout=5_000)
        except PlaywrightTimeout:  # already picked: a picked option leaves the list
            pass
        wait_rerun(page)
        page.keyboard.press("Escape")
        try:
            expect(header).to_have_count(1, timeout=10_000)
            break
        except AssertionError:
            continue
    expect(header).to_have_count(1)

    # Compare (the two newest by default): metrics side by side, then only C and seed, marked "different".
    diff = page.get_by_test_id("stDataFrame").last
    expect(page.get_by_text("Parameters and settings that differ between these runs")).to_be_visible()
    rows = diff.locator("tbody tr")  # the grid's accessible table (the cells themselves are drawn on a canvas)
    expect(rows).to_have_count(2)
    # parameter · churn v2 · churn v1 · comparison
    assert [r.text_content() for r in rows.all()] == ["seed" "7" "42" "different", "C" "1.0" "0.5" "different"]
    expect(diff).to_contain_text("different")
    expect(diff).not_to_contain_text("same")
    for frame in page.get_by_test_id("stDataFrame").all():  # nothing scrolls sideways at 1,400 px
        width, room = frame.locator(".dvn-scroller").evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert width <= room, (width, room)

    link = page.get_by_role("link", name="Open in MLflow")
    expect(link).to_have_attribute("href", re.compile(r"^http://mlflow\.example:5000/#/experiments/\d+/runs/\w+$"))

    # The pick stays put although time passes between reruns (a label saying "42 s ago" would not).
    page.get_by_role("combobox", name="Run", exact=True).click()
    page.get_by_role("option", name=re.compile(r"^churn v1 · ")).click()
    wait_rerun(page)
    time.sleep(1.5)
    page.get_by_text("Show the parameters that are the same too").click()
    wait_rerun(page)
    expect(page.get_by_role("heading", name=re.compile(r"^churn v1 · logistic regression"))).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").last).to_contain_text("same")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "after-training-compare-browser.png"), full_page=True)
