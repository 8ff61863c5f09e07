"""Evidence an auditor signs off: the inventory, periodic reviews and the `review` gate through the CLI and the API,
signed test reports that verify offline (and fail on a changed byte or another key), and a compliance report whose
coverage matrix has no "missing" row once a model went through the whole loop; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy import update

import cli
from core import policy
from core.accounts import auth
from core.actors import Actor, cli_actor
from core.alerts import notify
from core.compliance import evidence, reports
from core.platform.database import transaction
from core.promotion import approvals, gates, moves, registration, test_reports
from core.registry import cards, stewardship
from core.serving.feedback import record_feedback
from db.models import AliasMove, DriftCheck, PredictionLog, TrainingRun, utcnow
from tests.support.api import bearer
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn

SAM, ANN = Actor("sam", "scientist", "job"), Actor("ann", "approver")


def train(factory, settings) -> int:
    spec = {"dataset": "churn", "target": "churn", "model": "linear", "sensitive": "gender"}
    return registration.train(factory, settings, spec, actor=SAM, log=lambda line: None)["model_version"]


def save_policy(factory, settings, *, risk_tier: str, **sections: dict) -> None:
    text = settings.policies.text()
    for section, values in sections.items():
        text = policy.with_override(text, "churn", section, values)
    text = text.replace("models:\n  churn:\n", f"models:\n  churn:\n    risk_tier: {risk_tier}\n", 1)
    with transaction(factory) as s:
        settings.policies.save(s, actor=cli_actor(), text=text)


def accounts(factory) -> None:
    with transaction(factory) as s:
        for name, role in (("sam", "scientist"), ("ann", "approver")):
            auth.create_user(s, actor=cli_actor(), username=name, role=role, password=f"{name}-pass-123456")


def run_cli(monkeypatch, capsys, settings, *args: str) -> tuple[int, dict]:
    monkeypatch.setenv("LEANOPS_HOME", str(settings.home))
    monkeypatch.setenv("LEANOPS_DB_URL", settings.db_url)
    monkeypatch.setenv("LEANOPS_SCHEDULER", "off")
    capsys.readouterr()
    code = cli.main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_overdue_high_risk_review_blocks_promotion_until_an_approver_records_one(factory, workspace, monkeypatch,
                                                                                 capsys):
    accounts(factory)
    add_dataset(factory, workspace, small_churn())
    save_policy(factory, workspace, risk_tier="high", improvement={"min_relative": 0})
    first = train(factory, workspace)
    moves.promote(factory, workspace, actor=cli_actor(), model="churn", version=first)
    with transaction(factory) as s:  # in service for seven months: the six-month review is overdue
        s.execute(update(AliasMove).where(AliasMove.model == "churn").values(ts=utcnow() - timedelta(days=213)))
    second = train(factory, workspace)

    code, listed = run_cli(monkeypatch, capsys, workspace, "model", "list")
    assert code == 0
    [row] = listed
    assert row["model"] == "churn" and row["risk_tier"] == "high" and row["champion"] == first
    assert row["overdue"] is True and row["review_blocks_promotion"] is True and row["next_review_due"]

    code, refused = run_cli(monkeypatch, capsys, workspace, "promote", "churn", str(second))
    assert code == 1 and refused["promoted"] is False, refused
    assert [c["name"] for c in refused["checks"] if not c["passed"]] == ["review"]
    assert stewardship.alert_overdue(factory, workspace) == ["churn"]
    with factory() as s:
        [alert] = [a for a in notify.of_model(s, model="churn") if a.condition == "review"]
    assert alert.severity == "critical" and "review overdue" in alert.title

    app = create_app(workspace, factory=factory)
    with transaction(factory) as s:
        viewer, _ = auth.create_token(s, actor=cli_actor(), role="viewer", name="v")
        approver, _ = auth.create_token(s, actor=cli_actor(), role="approver", name="a", owner="ann")
    with TestClient(app) as client:
        assert client.get("/v1/models", headers=bearer(viewer)).json()[0]["overdue"] is True
        body = {"outcome": "continue", "notes": "performance, drift and fairness looked at"}
        assert client.post("/v1/models/churn/reviews", json=body, headers=bearer(viewer)).status_code == 403
        bad = client.post("/v1/models/churn/reviews", json={**body, "outcome": "keep"}, headers=bearer(approver))
        assert bad.status_code == 422 and "outcome" in bad.text
        done = client.post("/v1/models/churn/reviews", json=body, headers=bearer(approver))
        assert done.status_code == 201, done.text
        assert done.json()["reviewer"] == "token:a" and done.json()["next_due"]
        status = client.get("/v1/models/churn/reviews", headers=bearer(viewer)).json()
        assert status["overdue"] is False and status["reviews"][0]["outcome"] == "continue"

    code, listed = run_cli(monkeypatch, capsys, workspace, "model", "list")
    assert listed[0]["overdue"] is False and listed[0]["last_reviewer"] == "token:a"
    code, promoted = run_cli(monkeypatch, capsys, workspace, "promote", "churn", str(second))
    assert code == 0 and promoted["promoted"] is True
    review_check = next(c for c in promoted["checks"] if c["name"] == "review")
    assert review_check["passed"] and review_check["observed"] == "up to date"
    code, again = run_cli(monkeypatch, capsys, workspace, "model", "review", "churn", "--outcome", "retire",
                          "--notes", "replaced by the new scorecard")
    assert code == 0 and again["outcome"] == "retire"
    code, bad = run_cli(monkeypatch, capsys, workspace, "model", "review", "churn", "--outcome", "retire",
                        "--notes", "  ")
    assert code == 2 and "notes" in bad["error"]


def create_app(settings, *, factory):
    from api.app import create_app as make

    return make(settings, factory=factory)


@pytest.fixture
def whole_loop(factory, workspace):
    """churn v1 through the whole loop: certified data, trained with a sensitive column, gates, a policy change
    before promotion, approval, promotion, served predictions with labels, a window drift check with a
    label-free estimate, the card and inventory entry, a review; logs kept the default six months."""
    settings = workspace
    accounts(factory)
    add_dataset(factory, settings, small_churn())
    version = train(factory, settings)
    save_policy(factory, settings, risk_tier="high", approval={"required": True})
    with transaction(factory) as s:
        request = approvals.request_promotion(s, actor=SAM, model="churn", version=version, reason="first model")
    approvals.decide(factory, settings, actor=ANN, request_id=request.id, approve=True, comment="looks right")
    now = utcnow()
    with transaction(factory) as s:
        for i in range(40):
            s.add(PredictionLog(request_id=f"r{i}", record_index=0, ts=now - timedelta(hours=2), model="churn",
                                alias="champion", version=version, input_hash="0" * 64, inputs={"plan": "basic"},
                                output="yes" if i % 3 else "no", latency_ms=3.0, requested_by="sam"))
    with transaction(factory) as s:
        for i in range(40):
            record_feedback(s, actor=Actor("sam", "scientist"), model="churn", request_id=f"r{i}",
                            labels=["yes" if i % 4 else "no"], store=settings.data_store)
        s.add(DriftCheck(model="churn", version=version, source="window", window="last 24 h of predictions",
                         current_rows=40, reference_rows=480, threshold=0.5, drift_share=0.0, drift_detected=False,
                         columns={"plan": {"drifted": False}}, created_by="system:schedule:drift:churn",
                         predictions={"outputs": None, "verdict": {"drifted": False, "reasons": [], "not_counted": [],
                                                                  "ranked": []},
                                      "estimated_performance": {"accuracy": {"value": 0.7, "lower": 0.6,
                                                                             "upper": 0.8, "reference": 0.9}}}))
        cards.save(s, actor=SAM, model="churn", version=version, intended_use="Rank customers by churn risk.",
                   limitations="Synthetic data; not for pricing.", owner="sam")
        stewardship.save_profile(s, actor=SAM, model="churn", owner="sam", intended_use="Retention outreach lists",
                                 out_of_scope_use="Pricing, credit or any decision about an individual",
                                 tags=["retention", "marketing"])
        stewardship.record_review(s, settings, actor=ANN, model="churn", outcome="continue",
                                  notes="holdout, live accuracy and the gender gap looked at")
    return settings, version


def test_whole_loop_report_covers_every_item_and_its_signed_test_reports_verify(factory, whole_loop, tmp_path,
                                                                                  monkeypatch, capsys):
    settings, version = whole_loop
    content = reports.build(factory, settings, model="churn", version=version)
    errors = list(Draft202012Validator(reports.schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
                  .iter_errors(content))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert content["identity"]["report_format_version"] == 2 and reports.schema()["$id"].endswith("/2.json")
    rows = content["coverage"]["rows"]
    assert [r["ref"] for r in rows if r["status"] == "missing"] == [], [r for r in rows if r["status"] == "missing"]
    assert {r["framework"] for r in rows} == {"EU AI Act", "SR 11-7", "ISO/IEC 42001"}
    assert {r["ref"] for r in rows} >= {f"Annex IV {i}" for i in range(1, 10)} | {"Art. 12", "Art. 19", "Art. 72",
                                                                                 "A.5", "A.6.2.8", "A.7.6", "A.9"}
    assert {r["ref"] for r in rows if r["status"] == "outside"} == {"Annex IV 5", "Annex IV 7", "Annex IV 8"}

    embedded = content["test_reports"]["reports"]
    contexts = [r["context"] for r in embedded]  # (a policy change may add re-evaluations between them)
    assert [c for c in contexts if c in ("registration", "approval", "promotion")] == [
        "registration", "approval", "promotion"]
    public = test_reports.workspace_public_key(settings)
    for r in embedded:  # each embedded document verifies offline, byte for byte, with the workspace's public key
        assert test_reports.verify_bytes(r["document"].encode(), public_key=public).ok
    approval = json.loads(next(r for r in embedded if r["context"] == "approval")["document"])
    assert [(s["signer"], s["role"]) for s in approval["signatures"]] == [("ann", "evaluator"), ("ann", "approver")]
    signed = approval["report"]
    assert signed["dataset"]["sha256"] == content["training_data"]["sha256"]
    assert signed["model_artifact"]["sha256"] == content["identity"]["model_sha256"]
    assert {g["name"] for g in signed["gates"]} >= {"metric f1", "approvals", "review"}

    assert content["gates"]["fairness"]["gated"] and content["gates"]["fairness"]["source"] == "policy"
    [change] = content["gates"]["policy_changes_before_promotion"]
    assert change["actor"].startswith("cli:") and "risk_tier: high" in change["diff"]
    assert {g["group"] for g in content["group_performance"]["groups"]} == {"female", "male"}
    assert "accuracy" in content["group_performance"]["metrics"]
    [window] = content["late_label_ledger"]["windows"]
    assert window["labels"] == 40 and window["realised"] is not None
    assert content["retention"]["meets_art19"] and content["inventory"]["owner"] == "sam"
    assert content["inventory"]["reviews"][0]["reviewer"] == "ann"

    # the PDF and the JSON of one snapshot: the PDF cites the JSON's sha256
    out = tmp_path / "compliance.pdf"
    code, written = run_cli(monkeypatch, capsys, settings.model_copy(), "report", "churn", str(version),
                            "--format", "pdf", "--out", str(out))
    assert code == 0
    json_bytes = (tmp_path / "compliance.json").read_bytes()
    assert written["json_sha256"] == hashlib.sha256(json_bytes).hexdigest()
    from tests.core.compliance.test_reports import pdf_text

    words = pdf_text(out.read_bytes())
    assert written["json_sha256"] in words.replace(" ", "") and "Coverage" in words.split("1. Identity")[0]
    assert "BETWEEN THIS VERSION'S TRAINING AND ITS PROMOTION" in words and "…" not in words

    # report verify: the untouched file passes; any flipped byte, or another workspace's key, fails (exit 1)
    stored = tmp_path / "test-report.json"
    stored.write_text(next(r for r in embedded if r["context"] == "approval")["document"], encoding="utf-8")
    code, ok = run_cli(monkeypatch, capsys, settings, "report", "verify", str(stored))
    assert code == 0 and ok["ok"] and ok["signed_by"] == ["ann", "ann"] and ok["signed_at"]
    data = stored.read_bytes()
    for at in (0, data.index(b'"passed"') + 12, data.index(b"\n  ") + 1, len(data) - 2):
        flipped = bytearray(data)
        flipped[at] ^= 0x01
        stored.write_bytes(bytes(flipped))
        code, bad = run_cli(monkeypatch, capsys, settings, "report", "verify", str(stored))
        assert code == 1 and bad["ok"] is False, (at, bad)
    stored.write_bytes(data)
    other = tmp_path / "other.pub"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.audit_checkpoints import public_text

    other.write_text(public_text(Ed25519PrivateKey.generate().public_key()))
    code, foreign = run_cli(monkeypatch, capsys, settings, "report", "verify", str(stored), "--public-key", str(other))
    assert code == 1 and "another key" in foreign["reason"]


def test_fairness_not_gated_is_stated_and_the_sensitive_column_at_training_is_gated():
    rules = policy.for_model(policy.parse(policy.DEFAULT_POLICY_YAML), "credit")
    assert rules.fairness.column is None
    unmeasured = TrainingRun(sensitive=None, fairness=None)
    said = evidence.fairness_gate(rules, unmeasured)
    assert not said["gated"] and said["statement"].startswith("FAIRNESS NOT GATED")
    measured = TrainingRun(sensitive="gender", fairness={"gender": {"demographic_parity_ratio": 0.687}})
    said = evidence.fairness_gate(rules, measured)
    assert said["gated"] and said["source"] == "training" and said["observed"] == 0.687


def test_gates_take_the_sensitive_column_named_at_training_when_the_policy_names_none(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    version = train(factory, workspace)
    with factory() as s:
        result = gates.check_gates(s, workspace, model="churn", version=version, champion=None)
    assert workspace.policies.rules_for("churn").fairness.column == "gender"  # the default file names it for churn
    text = workspace.policies.text().replace("models:\n  churn:\n    fairness:\n      column: gender\n", "models: {}\n")
    with transaction(factory) as s:
        workspace.policies.save(s, actor=cli_actor(), text=text)
    assert workspace.policies.rules_for("churn").fairness.column is None
    with factory() as s:
        again = gates.check_gates(s, workspace, model="churn", version=version, champion=None)
    names = [c.name for c in again.checks]
    assert "fairness demographic parity ratio on gender" in names
    assert [c.name for c in result.checks] == names


def test_a_prediction_log_kept_less_than_six_months_is_named_missing_for_art19(workspace):
    from core.compliance import evidence

    assert workspace.prediction_retention_days == 183 and evidence.retention(workspace)["meets_art19"]
    short = evidence.retention(workspace.model_copy(update={"prediction_retention_days": 90}))
    assert not short["meets_art19"] and "NOT MET for the prediction log" in short["statement"]
    assert short["missing"] == ["the prediction log is kept 90 days, below Art. 19's six months"]
