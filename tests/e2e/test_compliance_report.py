"""Issue 8 in a real browser: an approved version's model card is edited on the Registry page, then both
compliance reports download; the PDF's text shows the dataset sha256, the approver, every gate verdict and
the chain result, and the JSON validates against the published schema."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page, expect

from core import policy
from core.actors import Actor
from core.compliance import reports
from core.platform.database import transaction
from core.promotion import approvals
from core.settings import get_settings
from db.session import make_engine, make_session_factory
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun

ROOT = Path(__file__).resolve().parents[2]


def cli(dashboard: Dashboard, *args: str) -> dict:
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=dashboard.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def approve_v2(dashboard: Dashboard) -> None:
    """Policy: churn needs one approval. sam requests v2's promotion, ann (a second user) approves it."""
    settings = get_settings(home=dashboard.home)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    try:
        with transaction(factory) as s:
            settings.policies.save(s, actor=Actor("admin", "admin"), text=policy.with_override(
                settings.policies.text(), "churn", "approval", {"required": True}))
            request = approvals.request_promotion(s, actor=Actor("sam", "scientist"), model="churn", version=2,
                                                  reason="beats v1 on F1")
        change = approvals.decide(factory, settings, actor=Actor("ann", "approver"), request_id=request.id,
                                  approve=True, comment="checked the fairness table")
        assert change is not None and change.to_version == 2
    finally:
        engine.dispose()


def test_reports_download_with_sha_approver_gates_and_chain(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    cli(dashboard, "init", "--demo")  # churn v1, promoted by system:demo
    trained = cli(dashboard, "train", "--dataset", "churn", "--target", "churn", "--model", "logistic_regression",
                  "--sensitive", "gender")
    assert trained["model_version"] == 2
    approve_v2(dashboard)

    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Registry")
    expect(page.get_by_role("heading", name="Versions of churn")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("version 2 (linear)")).to_be_visible()
    page.get_by_label("Intended use").fill("Rank customers by churn risk for the retention team.")
    page.get_by_label("Owner").fill("data-team")
    page.get_by_role("button", name="Save").click()
    wait_rerun(page)
    expect(page.get_by_text("Last edited by admin")).to_be_visible()

    with page.expect_download() as pdf_download:
        page.get_by_role("button", name="Download compliance report (PDF)").click()
    pdf_path = tmp_path / "report.pdf"
    pdf_download.value.save_as(pdf_path)
    with page.expect_download() as json_download:
        page.get_by_role("button", name="Download compliance report (JSON)").click()
    json_path = tmp_path / "report.json"
    json_download.value.save_as(json_path)

    content = json.loads(json_path.read_text())
    from jsonschema import Draft202012Validator

    Draft202012Validator(reports.schema(), format_checker=Draft202012Validator.FORMAT_CHECKER).validate(content)
    assert content["identity"]["report_sha256"] == reports.report_hash(content)
    assert content["approvals"]["approvers"] == ["ann"]
    assert content["model_card"]["owner"] == "data-team"

    from pypdf import PdfReader

    raw = pdf_path.read_bytes()
    assert raw.startswith(b"%PDF")
    words = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(raw)).pages).split())
    assert content["training_data"]["sha256"] in words
    assert "Approved by: ann" in words and "checked the fairness table" in words
    assert "Audit chain verified: intact" in words
    assert "Rank customers by churn risk for the retention team." in words
    checks = content["gates"]["checks"]
    assert checks and content["gates"]["passed"]
    for check in checks:
        assert check["name"] in words, check["name"]
    verdicts = [w for w in words.split() if w in ("PASS", "FAIL")]
    cert = content["training_data"]["certificate"]["checks"]
    assert verdicts.count("PASS") == sum(c["passed"] for c in checks) + sum(c["passed"] for c in cert)
    assert "ALL GATES PASSED" in words

    import shutil

    if shutil.which("pdftotext"):  # the issue's own check, where poppler-utils is installed
        text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
        flat = " ".join(text.split())
        assert content["training_data"]["sha256"] in flat and "ann" in flat and "Audit chain verified: intact" in flat
