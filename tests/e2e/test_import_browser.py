"""Bring your own model in a real browser: Registry's "Import a model" takes a notebook's skops pipeline, shows
LeanOps' own evaluation and gates (beside what the notebook claimed), and the new version is promoted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun
from tests.support.paths import ARTIFACTS, ROOT

SHOTS = ARTIFACTS  # test-artifacts/, kept by CI


@pytest.mark.timeout(600)
def test_import_through_the_registry_page_see_the_evaluation_promote(page: Page, dashboard: Dashboard,
                                                                     tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tests/support/notebook_models.py"), str(tmp_path),
                    str(tmp_path / "MARKER")], check=True, timeout=300, cwd=tmp_path)
    done = subprocess.run([sys.executable, "cli.py", "dataset", "add", "byom", str(tmp_path / "churn.csv"), "--json"],
                          cwd=ROOT, env=dashboard.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["quality"]["passed"] is True

    page.set_viewport_size({"width": 1280, "height": 2400})
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Registry")
    page.get_by_text("Import a model", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(tmp_path / "pipe.skops"))
    wait_rerun(page)
    page.get_by_label("Model name").fill("notebook_churn")
    page.get_by_label("Model name").press("Enter")
    wait_rerun(page)
    page.get_by_label("Metrics the notebook reported (optional JSON, shown but never gated)").fill('{"f1": 0.99}')
    page.get_by_label("Metrics the notebook reported (optional JSON, shown but never gated)").press("Enter")
    wait_rerun(page)
    page.get_by_role("button", name="Import and evaluate").click()
    wait_rerun(page, timeout=180_000)

    expect(page.get_by_text("Imported notebook_churn v1")).to_be_visible(timeout=180_000)
    expect(page.get_by_text("passed every gate: it is the challenger")).to_be_visible()
    expect(page.get_by_text("Evaluated by LeanOps on the holdout of byom:1")).to_be_visible()
    expect(page.get_by_text("training code not reproduced by LeanOps").first).to_be_visible()
    expect(page.get_by_role("heading", name="Versions of notebook_churn")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "issue24-import-evaluated.png"), full_page=True)

    page.get_by_role("button", name="Promote to production").click()
    wait_rerun(page)
    page.get_by_role("button", name="Yes, promote").click()  # a move asks first
    wait_rerun(page)
    expect(page.get_by_text("v1 is now the champion of notebook_churn.")).to_be_visible(timeout=60_000)
    page.screenshot(path=str(SHOTS / "issue24-import-promoted.png"), full_page=True)
