"""The model-weighted drift verdict, end to end: a model trained by LeanOps, checks through core, the CLI's exit code.

Ten features, a binary target that depends on three of them (plan, usage, latency). Moving the share of
one plan by 25 points and an unimportant number by 0.3 σ must count as drift, named by the important
column and by the model's outputs; the same shift on two unimportant columns flags both columns but
does not make the data count as drifted, and the verdict says why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from core.monitoring import checks, drift
from db.models import AuditEvent, Job
from db.session import make_engine, make_session_factory
from tests.core.monitoring.conftest import Trained, _checkpoint, _settings
from tests.core.monitoring.test_cli_drift import drift_cli
from tests.support import aliases
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, add_dataset

PLANS, PLAN_P = ["basic", "plus", "pro"], [0.5, 0.3, 0.2]
REGIONS, REGION_P = ["north", "south", "east"], [0.5, 0.3, 0.2]


def frame(rows: int, *, seed: int, plan_p: list[float] = PLAN_P, region_p: list[float] = REGION_P,
          noise1_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({
        "plan": rng.choice(PLANS, rows, p=plan_p),
        "usage": rng.normal(0, 1, rows),
        "latency": rng.normal(0, 1, rows),
        "noise1": rng.normal(0, 1, rows) + noise1_shift,  # σ = 1, so the shift is in σ
        "noise2": rng.normal(5, 2, rows),
        "noise3": rng.uniform(0, 10, rows),
        "noise4": rng.exponential(1, rows),
        "noise5": rng.normal(0, 1, rows),
        "region": rng.choice(REGIONS, rows, p=region_p),
        "channel": rng.choice(["web", "store"], rows),
    })
    logit = 2.5 * (out["plan"] == "basic") - 1.2 + 1.2 * out["usage"] - 1.0 * out["latency"]
    out["churn"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return out


@pytest.fixture(scope="module")
def scenario_template(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path, mlflow_template: Path) -> Path:
    from core.actors import Actor
    from core.promotion.registration import train

    root = tmp_path_factory.mktemp("verdict-trained")
    (root / "db").mkdir()
    (root / "ws").mkdir()
    shutil.copyfile(_sqlite_template, root / "db" / "leanops.db")
    shutil.copyfile(mlflow_template, root / "ws" / "mlflow.db")
    settings = _settings(root)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    add_dataset(factory, settings, frame(5000, seed=1), name="subs")
    train(factory, settings, {"dataset": "subs", "target": "churn", "model": "linear"},
          actor=Actor("sam", "scientist", "job"), log=lambda line: None)
    aliases.move(settings, model="subs", alias="champion", version=1)
    engine.dispose()
    _checkpoint(root / "db" / "leanops.db")
    _checkpoint(root / "ws" / "mlflow.db")
    return root


@pytest.fixture
def scenario(scenario_template: Path, tmp_path: Path):
    root = tmp_path / "verdict"
    shutil.copytree(scenario_template, root)
    settings = _settings(root)
    engine = make_engine(settings.db_url)
    yield Trained(settings, make_session_factory(engine))
    engine.dispose()


def rules_of(check: checks.CheckView) -> set[str]:
    return {r["rule"] for r in check.verdict["reasons"]}


def test_an_important_column_and_the_outputs_make_drift(scenario, tmp_path):
    current = frame(3000, seed=2, plan_p=[0.25, 0.55, 0.2], noise1_shift=0.3)
    check = checks.run_check(scenario.factory, scenario.settings, actor=SCIENTIST, model="subs", source="upload",
                             current=current.drop(columns="churn"), filename="moved.csv", report=False)
    assert {"plan", "noise1"} <= set(check.drifted) and check.drift_share < 0.5  # the share rule alone: no drift
    assert check.drift_detected and check.verdict["drifted"]
    assert {"prediction_drift", "important_feature"} <= rules_of(check)
    important = next(r for r in check.verdict["reasons"] if r["rule"] == "important_feature")
    assert important["columns"] == ["plan"] and "plan drifted" in important["text"]
    assert check.drifted[0] == "plan"  # ranked by importance: the one that matters leads
    assert check.columns["plan"]["importance"] > check.columns["noise1"]["importance"]
    assert check.predictions is not None and "probability" in check.predictions["output"]
    # One verdict everywhere: the audit event, the retrain trigger, the alert text.
    with scenario.factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "drift.checked")).all()[-1]
        assert any("plan drifted" in text for text in event.details["verdict"])
        assert s.scalars(select(Job).where(Job.kind == "retrain.consider")).all()
    from core.retraining.decisions import should_retrain_on_drift
    from db.models import DriftCheck

    with scenario.factory() as s:
        decision = should_retrain_on_drift(s.get(DriftCheck, check.id), scenario.settings.policies.rules_for("subs"))
    assert decision.act and "plan drifted" in decision.reason
    # The command a CI job runs says the same, with exit 1.
    batch = tmp_path / "moved.parquet"
    current.drop(columns="churn").to_parquet(batch)
    code, out, err = drift_cli(scenario.settings, "subs", "--current", str(batch), "--no-report")
    doc = json.loads(out)
    assert code == 1, err
    assert doc["drift_detected"] is True and doc["verdict"]["drifted"] is True
    assert {"prediction_drift", "important_feature"} <= set(doc["verdict"]["rules"])
    assert any("plan drifted" in r for r in doc["verdict"]["reasons"])
    assert doc["columns"]["plan"]["importance"] == pytest.approx(check.columns["plan"]["importance"])


def test_unimportant_columns_alone_are_flagged_but_not_drift(scenario):
    current = frame(3000, seed=3, region_p=[0.25, 0.55, 0.2], noise1_shift=0.3)
    check = checks.run_check(scenario.factory, scenario.settings, actor=SCIENTIST, model="subs", source="upload",
                             current=current.drop(columns="churn"), filename="quiet.csv", report=False)
    assert set(check.drifted) == {"region", "noise1"}  # both columns flagged ...
    assert not check.drift_detected and check.verdict == check.verdict | {"drifted": False, "reasons": []}
    said = " ".join(check.verdict["not_counted"])  # ... and the verdict explains why they do not count
    assert "region drifted but carries" in said and "noise1 drifted but carries" in said
    assert "of the importance (< 10%)" in said and "(20% < 50%)" in said
    assert "the model's outputs did not drift" in said
    with scenario.factory() as s:
        considered = s.scalars(select(Job).where(Job.kind == "retrain.consider"))
        assert not [j for j in considered if "drift_check" in j.params]  # (the dataset upload's follow-up aside)


def test_identical_data_of_a_million_rows_raises_nothing(scenario):
    """Columns on every row, outputs and estimate on a 20,000-row sample: nothing fires."""
    current = frame(1_000_000, seed=4).drop(columns="churn")
    check = checks.run_check(scenario.factory, scenario.settings, actor=SCIENTIST, model="subs", source="upload",
                             current=current, filename="same.parquet", report=False)
    assert check.drifted == [] and not check.drift_detected and check.verdict["reasons"] == []
    assert check.predictions is not None and not check.predictions["drifted"]
    accuracy = check.estimated_performance["accuracy"]
    assert accuracy["lower"] <= accuracy["reference"] <= accuracy["upper"]


@pytest.mark.parametrize(("weights", "drifted", "outputs", "fired"), [
    ({"a": 0.6, "b": 0.3, "c": 0.1, "d": 0.0}, ["d"], False, set()),
    ({"a": 0.6, "b": 0.3, "c": 0.1, "d": 0.0}, ["c"], False, {"important_feature", "importance_share"}),
    ({"a": 0.6, "b": 0.3, "c": 0.05, "d": 0.05}, ["d"], False, set()),
    ({"a": 0.6, "b": 0.3, "c": 0.05, "d": 0.05}, ["d"], True, {"prediction_drift"}),
    ({"a": 0.9, "b": 0.0, "c": 0.0, "d": 0.0}, ["b", "c"], False, {"drift_share"}),  # zero weight: not "top-3"
    ({}, ["a"], False, set()),  # no importance stored: only the share rule weighs columns
])
def test_the_rules_table(weights, drifted, outputs, fired):
    columns = {n: {"drifted": n in drifted} for n in "abcd"}
    said = drift.verdict(columns, {"drifted": outputs, "output": "p", "method": "ks", "statistic": 0.3},
                         share=len(drifted) / 4, thresholds=drift.Thresholds(), importance=weights or None)
    assert {r["rule"] for r in said["reasons"]} == fired and said["drifted"] == bool(fired)
    if not fired:
        assert said["not_counted"] and all(any(n in t for t in said["not_counted"]) for n in drifted)


def test_a_check_stored_before_the_verdict_reads_with_the_share_rule_as_its_reason(scenario):
    from core.platform.database import transaction
    from db.models import DriftCheck

    with transaction(scenario.factory) as s:
        row = DriftCheck(model="subs", version=1, source="upload", window="file old.csv", current_rows=10,
                         reference_rows=10, threshold=0.5, drift_share=0.6, drift_detected=True,
                         columns={"plan": {"drifted": True}, "usage": {"drifted": False}},
                         predictions={"method": "chisquare", "drifted": False}, created_by="sam")
        s.add(row)
        s.flush()
        old_id = row.id
    with scenario.factory() as s:
        view = checks.get(s, old_id)
    assert view.predictions == {"method": "chisquare", "drifted": False} and view.estimated_performance == {}
    assert view.verdict["drifted"] and [r["rule"] for r in view.verdict["reasons"]] == ["drift_share"]
    assert view.drifted == ["plan"]


def test_the_drift_alert_leads_with_the_column_that_matters_and_the_estimate(scenario):
    """What reaches a webhook: the most important drifted column, its share of the model's importance and the
    estimated F1 against the holdout, in the title and first in the message; then why it counts."""
    from core import secrets
    from core.actors import cli_actor
    from core.alerts import channels, notify
    from core.platform.database import transaction
    from tests.support.receivers import HttpReceiver

    settings = scenario.settings.model_copy(update={"alert_allowed_hosts": "127.0.0.1"})  # the receiver: loopback
    current = frame(3000, seed=2, plan_p=[0.25, 0.55, 0.2], noise1_shift=0.3).drop(columns="churn")
    with HttpReceiver(hang_seconds=10) as http:
        with transaction(scenario.factory) as s:
            channels.add_channel(s, actor=cli_actor(), name="ops-hook", kind="webhook",
                                 config={"url": http.url("/hook"), "secret": "s3cret-s3cret-s3cret"},
                                 keys=secrets.load_keys(settings))
        check = checks.run_check(scenario.factory, settings, actor=SCIENTIST, model="subs", source="upload",
                                 current=current, filename="moved.csv", report=False)
        assert notify.wait_for_deliveries(60)
        [hook] = [r for r in http.received("/hook") if r.json()["condition"] == "drift"]
    body = hook.json()
    share = check.columns["plan"]["importance"]
    f1 = check.estimated_performance["f1"]
    lead = (f"plan drifted; it carries {share:.0%} of the model's importance; "
            f"estimated F1 {f1['reference']:.2f} → {f1['value']:.2f}")
    assert checks.headline(check) == lead
    assert body["title"] == f"Drift in subs v1: {lead}"
    assert body["message"].startswith(f"{lead}. Why it counts: ") and "plan drifted" in body["message"]
    assert body["details"]["drifted_columns"][0] == "plan"
