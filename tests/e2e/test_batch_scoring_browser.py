"""Batch scoring in a real browser: Registry's "Score a file" upload → progress → download, then the Audit log's
prediction lookup of the batch shows the waterfall of one record's contributions."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun
from tests.support.paths import ARTIFACTS, ROOT

SHOTS = ARTIFACTS  # test-artifacts/, kept by CI


@pytest.mark.timeout(1500)  # `init --demo` trains and promotes a model first
@pytest.mark.parametrize("dashboard", [{"LEANOPS_SCHEDULER": "off"}], indirect=True)  # this test runs the jobs
def test_score_a_file_upload_download_and_the_waterfall(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "cli.py", "init", "--demo", "--json"], cwd=ROOT, env=dashboard.env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["demo_model"]["aliases"] == {"champion": 1}
    from core.workspace.demo import churn_frame

    frame = churn_frame(rows=40, seed=11).drop(columns=["churn"])
    frame.insert(0, "customer_id", [f"cust-{i}" for i in range(len(frame))])
    upload = tmp_path / "customers.csv"
    frame.to_csv(upload, index=False)

    page.set_viewport_size({"width": 1280, "height": 2200})
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Registry")
    expect(page.get_by_role("heading", name="Versions of churn")).to_be_visible(timeout=60_000)
    page.get_by_text("Score a file", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').last.set_input_files(str(upload))
    wait_rerun(page)
    page.get_by_role("textbox", name="Id column (optional)").fill("customer_id")
    page.get_by_role("textbox", name="Id column (optional)").press("Enter")
    wait_rerun(page)
    page.get_by_role("button", name="Score", exact=True).click()
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"scoring job #\d+"))).to_be_visible()
    # No scheduler in the dashboard: this process is the worker (the same job runner), so the queue (the demo's
    # follow-ups, then the scoring job) is run once, in order, with no second writer on the SQLite file.
    drain(dashboard)
    download_button = page.get_by_role("button", name=re.compile("Download scored file"))
    expect(download_button).to_be_visible(timeout=300_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "issue25-score-a-file.png"), full_page=True)
    notice = page.get_by_text(re.compile(r"Scored 40 rows with churn v1")).inner_text()
    batch_id = re.search(r"batch ([0-9a-f]{32})", notice).group(1)
    with page.expect_download() as info:
        download_button.click()
    table = pq.read_table(io.BytesIO(Path(info.value.path()).read_bytes())).to_pandas()
    assert table["customer_id"].tolist() == frame["customer_id"].tolist()
    assert {"prediction", "probability_0", "probability_1"} <= set(table.columns)

    goto_page(page, "Audit log")
    field = page.get_by_role("textbox", name="Request id")
    field.scroll_into_view_if_needed()
    field.fill(batch_id)
    field.press("Enter")
    wait_rerun(page, timeout=120_000)
    expect(page.get_by_text("Why this answer")).to_be_visible(timeout=120_000)
    chart = page.get_by_test_id("stPlotlyChart").last
    expect(chart).to_be_visible(timeout=120_000)
    expect(chart).to_contain_text("base value")
    expect(page.get_by_text(re.compile(r"Base value \+ contributions = "))).to_be_visible()
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "issue25-waterfall.png"), full_page=True)


def drain(dashboard: Dashboard) -> None:
    from core.settings import get_settings
    from db.session import make_engine, make_session_factory
    from jobs.runner import run_next

    settings = get_settings(home=dashboard.home, scheduler="off")
    engine = make_engine(settings.db_url)
    try:
        while run_next(make_session_factory(engine), settings, "e2e-helper") is not None:
            pass
    finally:
        engine.dispose()
