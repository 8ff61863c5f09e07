"""Compliance reports on a real workspace: JSON valid against the published schema, PDF with real text and
a chart image, every section filled from what LeanOps recorded, and missing data stated instead of failing."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select, text

from core import audit, formats, policy
from core.actors import Actor, cli_actor
from core.compliance import reports
from core.data.datasets import key_for
from core.errors import InvalidInput, NotFound
from core.platform.database import transaction
from core.promotion import approvals as promotion_approvals
from core.promotion import registration
from core.registry import cards
from core.serving.feedback import record_feedback
from db.models import AuditEvent, DriftCheck, PredictionLog, utcnow
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn

APPROVER, SECOND = Actor("ann", "approver"), Actor("bob", "approver")


def validate(content: dict) -> None:
    validator = Draft202012Validator(reports.schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(content), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    # Whitespace collapsed: a table cell wraps long text onto several lines.
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def train(factory, settings, **spec) -> int:
    spec = {"dataset": "churn", "target": "churn", "model": "linear", "sensitive": "gender"} | spec
    return registration.train(factory, settings, spec, actor=Actor("sam", "scientist", "job"),
                              log=lambda line: None)["model_version"]


@pytest.fixture
def trained(factory, workspace):
    """churn v1 trained by sam, approved by ann (policy requires approval) and promoted; a drift check stored."""
    Draft202012Validator.check_schema(reports.schema())
    add_dataset(factory, workspace, small_churn())
    version = train(factory, workspace)
    with transaction(factory) as s:
        workspace.policies.save(s, actor=cli_actor(), text=policy.with_override(
            workspace.policies.text(), "churn", "approval", {"required": True}))
        request = promotion_approvals.request_promotion(s, actor=Actor("sam", "scientist"), model="churn",
                                                        version=version, reason="first model")
    promotion_approvals.decide(factory, workspace, actor=APPROVER, request_id=request.id, approve=True,
                               comment="looks right")
    with transaction(factory) as s:
        s.add(DriftCheck(model="churn", version=version, source="upload", window="file march.csv", current_rows=200,
                         reference_rows=480, threshold=0.5, drift_share=0.25, drift_detected=False,
                         columns={"tenure_months": {"drifted": True}, "plan": {"drifted": False}},
                         created_by="sam"))
        cards.save(s, actor=Actor("sam", "scientist"), model="churn", version=version,
                         intended_use="Rank customers by churn risk for the retention team.",
                         limitations="Trained on synthetic data; not for pricing.", owner="sam")
    return workspace, version


def test_report_has_every_section_and_validates(factory, trained):
    settings, version = trained
    with transaction(factory) as s:  # one served prediction (as the API's log writer stores it), labelled
        s.add(PredictionLog(request_id="r1", record_index=0, ts=utcnow(), model="churn", alias="champion",
                            version=version, input_hash="0" * 64, inputs={"plan": "basic"}, output="yes",
                            latency_ms=3.0, requested_by="sam"))
    with transaction(factory) as s:
        record_feedback(s, actor=Actor("sam", "scientist"), model="churn", request_id="r1", labels=["yes"],
                        store=settings.data_store)
    content = reports.build(factory, settings, model="churn", version=version)
    validate(content)
    ident, data = content["identity"], content["training_data"]
    assert ident["mlflow_run_id"] and len(ident["model_sha256"]) == 64 and ident["model_files"] >= 3
    assert ident["report_sha256"] == reports.report_hash(content)
    assert data["dataset"] == "churn" and data["version"] == 1 and data["file_present"]
    assert data["certificate"]["passed"] and data["certificate"]["checks"]
    assert content["model_card"]["owner"] == "sam" and not content["model_card"]["missing"]
    assert content["training_config"]["model_kind"] == "linear" and content["training_config"]["seed"] == 42
    evaluation = content["evaluation"]
    assert evaluation["chart"] == "confusion_matrix" and "f1" in evaluation["metrics"] and evaluation["fairness"]
    gates = content["gates"]
    assert gates["evaluated"] and {c["name"] for c in gates["checks"]} >= {"metric f1", "approvals"}
    assert all(c["verdict"] == ("pass" if c["passed"] else "fail") for c in gates["checks"])
    approvals = content["approvals"]
    assert approvals["approvers"] == ["ann"]
    assert approvals["requests"][0]["decisions"][0]["comment"] == "looks right"
    assert approvals["champion_periods"][0]["end"] is None
    assert content["monitoring"]["drift"]["latest"]["drifted_columns"] == ["tenure_months"]
    assert content["monitoring"]["performance"] == {"labelled": 1, "metrics": {"accuracy": 1.0, "f1": 1.0}}
    assert content["monitoring"]["predictions"] == 1 and not content["monitoring"]["missing"]
    actions = {e["action"] for e in content["audit"]["events"]}
    assert {"model.trained", "model.approved", "model.promote", "model_card.updated"} <= actions
    assert content["audit"]["chain"]["ok"]


def test_report_hash_covers_the_content(factory, trained):
    settings, version = trained
    content = reports.build(factory, settings, model="churn", version=version)
    content["approvals"]["approvers"] = ["mallory"]
    assert reports.report_hash(content) != content["identity"]["report_sha256"]


def test_pdf_has_text_tables_and_the_chart(factory, trained):
    settings, version = trained
    content = reports.build(factory, settings, model="churn", version=version)
    data = reports.render_pdf(content)
    assert data.startswith(b"%PDF")
    words = pdf_text(data)
    for expected in (content["training_data"]["sha256"], "Approved by: ann", "Audit chain verified: intact",
                     "Confusion matrix", "Rank customers by churn risk", content["identity"]["report_sha256"]):
        assert expected in words, expected
    for check in content["gates"]["checks"]:
        assert check["name"] in words
    from pypdf import PdfReader

    assert any(page.images for page in PdfReader(io.BytesIO(data)).pages), "the chart is an embedded image"


def test_the_drift_section_leads_with_the_column_that_matters_and_the_estimate(factory, trained):
    """A real check (the trained model's importance and its CBPE estimate): the JSON and the PDF lead the drift
    section with the headline, say why the data counts as drifted, and rank the drifted columns by importance."""
    from core.monitoring import checks

    settings, version = trained
    moved = small_churn(1500, seed=9)
    rng = np.random.default_rng(9)
    moved["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(moved), p=[0.85, 0.1, 0.05])
    moved["region"] = rng.choice(["north", "south", "east", "west"], len(moved), p=[0.55, 0.15, 0.15, 0.15])
    check = checks.run_check(factory, settings, actor=Actor("sam", "scientist"), model="churn", version=version,
                             source="upload", current=moved.drop(columns="churn"), filename="april.csv",
                             report=False)
    assert check.drift_detected and {"contract", "region"} <= set(check.drifted)
    content = reports.build(factory, settings, model="churn", version=version)
    validate(content)
    latest = content["monitoring"]["drift"]["latest"]
    f1 = check.estimated_performance["f1"]
    assert latest["headline"] == checks.headline(check)
    assert latest["headline"].startswith(f"contract drifted; it carries {check.columns['contract']['importance']:.0%}"
                                         " of the model's importance; estimated F1 "
                                         f"{f1['reference']:.2f} → {f1['value']:.2f}"), latest["headline"]
    shares = [r["importance"] for r in latest["drifted_ranked"]]
    assert latest["drifted_ranked"][0]["column"] == "contract" and shares == sorted(shares, reverse=True)
    assert latest["verdict"] == [r["text"] for r in check.verdict["reasons"]] and latest["verdict"]
    assert latest["estimated_performance"] == check.estimated_performance
    words = pdf_text(reports.render_pdf(content))
    lead = words.index(latest["headline"])
    assert lead < words.index("Counts as drift because: ") < words.index("share of the model's importance")
    assert "metric (estimated without labels)" in words


def test_pdf_prints_numbers_and_structures_as_people_read_them(factory, trained):
    """Issue 19 item 5: no 16-digit gate values, parameters and fairness as tables (not JSON); audit details
    whole (nothing cut with an ellipsis)."""
    settings, version = trained
    content = reports.build(factory, settings, model="churn", version=version)
    gate = content["gates"]["checks"][0]
    gate["observed"] = 0.8123456789012345
    content["training_config"]["parameters"] = {"C": 0.123456789, "max_iter": 1000, "penalty": "l2"}
    long_details = {"note": "x" * 400, "score": 0.123456789}
    content["audit"]["events"].insert(0, {**content["audit"]["events"][0], "details": long_details})
    words = pdf_text(reports.render_pdf(content))
    assert "0.812" in words and "0.8123456789012345" not in words
    assert "parameter value C 0.123 max_iter 1000 penalty l2" in words  # a table, one parameter a row
    assert '"C"' not in words and "{" not in words  # no raw JSON anywhere
    fairness = content["evaluation"]["fairness"]["gender"]
    groups = sorted(fairness["by_group"])
    assert "group count accuracy f1" in words  # per-group measures as columns
    for group in groups:
        row = fairness["by_group"][group]
        assert f"{group} {row['count']} {formats.number(row['accuracy'])}" in words
    assert f"demographic_parity_ratio {formats.number(fairness['demographic_parity_ratio'])}" in words
    # nothing cut: the whole 400 characters (a table cell wraps them), and no ellipsis anywhere
    assert "x" * 400 in words.replace(" ", "") and "…" not in words and "0.123456789" not in words


def test_generate_and_write_record_the_report_in_the_audit_log(factory, trained, tmp_path):
    settings, version = trained
    out = tmp_path / "r.json"
    doc = reports.write(factory, settings, actor=cli_actor(), model="churn", version=version, fmt="json", out=out)
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    validate(json.loads(out.read_text()))
    with factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "report.generated")).one()
    assert event.subject == "model:churn" and event.details["sha256"] == doc["sha256"]
    with pytest.raises(InvalidInput, match="format 'docx' is unknown"):
        reports.write(factory, settings, actor=cli_actor(), model="churn", version=version, fmt="docx",
                      out=tmp_path / "r.docx")
    with pytest.raises(InvalidInput, match="does not exist"):
        reports.write(factory, settings, actor=cli_actor(), model="churn", version=version, fmt="pdf",
                      out=tmp_path / "no" / "r.pdf")
    assert not (tmp_path / "r.docx").exists()


def test_unknown_version_is_refused_with_the_known_ones(factory, trained):
    settings, _ = trained
    with pytest.raises(NotFound, match="model 'churn' has no version 7; its versions are: 1"):
        reports.build(factory, settings, model="churn", version=7)


def test_missing_data_is_stated_not_fatal(factory, trained):
    """Dataset file removed, no monitoring for a new version, a version registered outside LeanOps."""
    settings, _ = trained
    second = train(factory, settings, model="random_forest")
    (settings.home / key_for(small_churn_sha(factory))).unlink()
    content = reports.build(factory, settings, model="churn", version=second)
    validate(content)
    assert not content["training_data"]["file_present"]
    assert "was removed from the store" in content["training_data"]["missing"][0]
    assert content["monitoring"]["missing"][0] == "no drift checks yet"
    assert "never been champion" in content["approvals"]["missing"][-1]
    reports.render_pdf(content)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    outside = int(client.create_model_version("churn", source=str(settings.home / "nowhere")).version)
    content = reports.build(factory, settings, model="churn", version=outside)
    validate(content)
    assert "no LeanOps training run" in content["training_data"]["missing"][0]
    assert "no LeanOps training run" in content["training_config"]["missing"][0]
    assert content["gates"]["missing"] == ["the gates were never evaluated"]
    assert "model files could not be read" in content["identity"]["missing"][0]
    assert "Missing: no LeanOps training run" in pdf_text(reports.render_pdf(content))


def test_a_broken_chain_shows_in_the_report(factory, trained):
    settings, version = trained
    with transaction(factory) as s:
        audit.record(s, cli_actor(), "test.event", "model:churn", {})
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    content = reports.build(factory, settings, model="churn", version=version)
    assert content["audit"]["chain"]["ok"] is False and content["audit"]["chain"]["first_bad"] == 3
    assert "Audit chain verified: BROKEN at event 3" in pdf_text(reports.render_pdf(content))


def small_churn_sha(factory) -> str:
    from core.data.datasets import resolve

    with factory() as s:
        return resolve(s, ref="churn:1").sha256


def test_cli_report_prints_one_json_document(factory, trained, tmp_path, monkeypatch, capsys):
    import cli

    settings, version = trained
    monkeypatch.setenv("LEANOPS_HOME", str(settings.home))
    monkeypatch.setenv("LEANOPS_DB_URL", settings.db_url)
    out = tmp_path / "churn.pdf"
    assert cli.main(["report", "churn", str(version), "--format", "pdf", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(out) and doc["format"] == "pdf"
    assert doc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert cli.main(["report", "churn", "9", "--format", "json", "--out", str(tmp_path / "x.json"), "--json"]) == 2
    assert "has no version 9" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(("suppressed", "deliveries", "word"), [
    (False, [], "not sent: no channel"),  # it said "sent: yes" (issue 19)
    (True, [], "not sent: cooldown"),
    (False, [{"channel": "ops", "ok": True}], "sent"),
    (False, [{"channel": "ops", "ok": False}], "not sent: delivery failed"),
    (False, [{"channel": "a", "ok": True}, {"channel": "b", "ok": False}], "partly sent"),
    (False, [{"channel": "ops", "ok": None}], "sending"),
])
def test_an_alert_is_called_sent_only_when_a_channel_took_it(suppressed, deliveries, word):
    assert reports.delivery(suppressed, deliveries) == word
