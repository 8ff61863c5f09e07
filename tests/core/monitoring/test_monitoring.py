"""Drift checks end to end on a real trained model: sources, storage + audit, alerts, bad input, the job.

Training a model costs ~20 s here, so one workspace is trained once per test session (churn v1,
promoted to champion) and copied per test: every test gets its own metadata DB and MLflow store.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from core.actors import system_actor
from core.alerts import notify
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.monitoring import checks
from core.platform import job_queue
from core.platform.database import transaction
from db.models import AuditEvent, DriftCheck, PredictionLog, utcnow
from jobs import runner
from tests.support.drift import shifted
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, VIEWER, add_dataset, small_churn
from tests.support.worker import drain

FEATURES = ["customer_age", "tenure_months", "monthly_charges", "total_charges", "support_calls", "contract",
            "payment_method", "region", "gender", "senior"]


def audit_events(factory, action: str) -> list[AuditEvent]:
    with factory() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def log_predictions(factory, frame: pd.DataFrame, *, hours_ago: float = 1.0, output: int = 0) -> None:
    ts = utcnow() - timedelta(hours=hours_ago)
    records = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict("records")
    with transaction(factory) as s:
        s.add_all([PredictionLog(request_id=f"r{i}", record_index=0, ts=ts, model="churn", alias="champion", version=1,
                                 input_hash="x" * 64, inputs={k: (bool(v) if isinstance(v, np.bool_) else v)
                                                              for k, v in rec.items()},
                                 output=output, latency_ms=1.0) for i, rec in enumerate(records)])


# -- storage, audit, alerts ------------------------------------------------------------------------

def test_an_upload_check_is_stored_audited_reported_and_alerts(trained):
    settings, factory = trained.settings, trained.factory
    check = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="upload",
                                 current=shifted(), filename="batch.csv")
    assert check.version == 1 and check.source == "upload" and check.window == "file batch.csv"
    assert {"monthly_charges", "contract", "payment_method", "support_calls", "tenure_months"} <= set(check.drifted)
    assert check.drift_detected and check.drift_share >= 0.5 and check.threshold == 0.5
    assert check.columns["monthly_charges"]["method"] == "ks" and check.columns["monthly_charges"]["p_value"] < 1e-6
    # The model's outputs: its predicted probability of the positive class, not only the labels.
    assert check.predictions is not None and check.predictions["method"] == "ks"
    assert check.predictions["output"] == "predicted probability of '1'"
    assert check.verdict["drifted"] and "drift_share" in {r["rule"] for r in check.verdict["reasons"]}
    assert set(check.estimated_performance) == {"accuracy", "precision", "recall", "f1", "roc_auc"}

    with factory() as s:
        row = s.get(DriftCheck, check.id)
        assert (row.created_by, row.current_rows, row.drift_detected) == ("sam", 800, True)
        assert checks.latest(s, model="churn").id == check.id
        assert [c.id for c in checks.history(s, model="churn")] == [check.id]
        stored_alerts = notify.recent(s, model="churn")
    event = audit_events(factory, "drift.checked")[-1]
    assert (event.actor, event.subject) == ("sam", "model:churn")
    details = json.loads(event.details_json)
    assert details["check_id"] == check.id and details["drifted_columns"] == check.drifted
    assert (details["drift_share"], details["version"], details["source"]) == (round(check.drift_share, 4), 1, "upload")
    assert [a.condition for a in stored_alerts] == ["drift"] and "churn v1" in stored_alerts[0].title
    with factory() as s:  # the check queued its retrain.consider follow-up with it; the worker runs it
        considered = job_queue.list_jobs(s, kind="retrain.consider")  # (the dataset upload's follow-up aside)
        assert [j.params["drift_check"] for j in considered if "drift_check" in j.params] == [check.id]
    drain(factory, settings, limit=1)
    with factory() as s:
        retrains = job_queue.list_jobs(s, kind="retrain")
    assert len(retrains) == 1 and retrains[0].created_by == "system:retrain"
    assert retrains[0].params["reason"].startswith(f"drift check {check.id}")

    report = Path(check.report_path)
    assert report.parent == settings.home / "reports" / "drift" and report.suffix == ".html"
    assert report.with_suffix(".sample.parquet").exists()  # its sample was in place before the check committed
    assert not report.exists()  # the verdict did not wait for Evidently: a drift.report job builds it
    drain(factory, settings, limit=1)
    text = report.read_text(encoding="utf-8")
    assert "drawn from the reference statistics" in text and "evidently" in text.lower()
    assert not list(report.parent.glob("*.parquet"))  # the sample is gone


def test_same_distribution_upload_raises_no_data_drift_and_no_alert(trained):
    check = checks.run_check(trained.factory, trained.settings, actor=SCIENTIST, model="churn", source="upload",
                                 current=small_churn(900, seed=21), report=False)
    assert not check.drift_detected and len(check.drifted) <= 1 and check.report_path is None
    with trained.factory() as s:
        assert notify.recent(s, model="churn") == []


def test_window_of_logged_predictions_and_threshold_override(trained):
    settings, factory = trained.settings, trained.factory
    log_predictions(factory, shifted(300, seed=4), hours_ago=1)
    log_predictions(factory, shifted(300, seed=5), hours_ago=48)  # outside a 24 h window
    check = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="window", report=False)
    assert check.window == "last 24 h of predictions" and check.current_rows == 300
    assert check.predictions["current_rows"] == 300 and check.predictions["output"] == "predicted probability of '1'"
    p = check.columns["monthly_charges"]["p_value"]
    assert check.columns["monthly_charges"]["drifted"] and p > 0
    strict = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="window",
                                  threshold=p / 10, report=False)
    assert strict.current_rows == 300 and not strict.columns["monthly_charges"]["drifted"]
    assert strict.columns["monthly_charges"]["threshold"] == p / 10
    longer = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="window", hours=72,
                                  report=False)
    assert longer.current_rows == 600 and longer.window == "last 72 h of predictions"


def test_dataset_source_compares_a_registered_version(trained):
    settings, factory = trained.settings, trained.factory
    add_dataset(factory, settings, shifted(700, seed=3))
    check = checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="dataset",
                                 dataset="churn:2", report=False)
    assert check.window == "dataset churn:2" and check.drift_detected


# -- bad input -----------------------------------------------------------------------------------

def test_missing_columns_are_named_and_nothing_is_stored(trained):
    batch = shifted().drop(columns=["region", "gender"])
    with pytest.raises(InvalidInput, match=r"file b.csv\) is missing column\(s\) region, gender that churn v1 was "
                                           r"trained on; it has: customer_age"):
        checks.run_check(trained.factory, trained.settings, actor=SCIENTIST, model="churn", source="upload",
                             current=batch, filename="b.csv")
    with trained.factory() as s:
        assert checks.latest(s, model="churn") is None
    assert not (trained.settings.home / "reports").exists()


def test_empty_or_quiet_window_says_so_and_stores_nothing(trained):
    with pytest.raises(checks.InsufficientData, match=r"0 prediction\(s\) of churn were logged in the last 24 h; "
                                                          r"a drift check needs at least 30"):
        checks.run_check(trained.factory, trained.settings, actor=SCIENTIST, model="churn", source="window")
    log_predictions(trained.factory, shifted(12))
    with pytest.raises(checks.InsufficientData, match=r"^12 prediction"):
        checks.run_check(trained.factory, trained.settings, actor=SCIENTIST, model="churn", source="window")
    assert audit_events(trained.factory, "drift.checked") == []


def test_no_reference_no_champion_and_no_permission(trained):
    settings, factory = trained.settings, trained.factory
    with pytest.raises(NotFound, match="churn version 7 has no reference statistics"):
        checks.run_check(factory, settings, actor=SCIENTIST, model="churn", version=7, source="upload",
                             current=shifted())
    with pytest.raises(NotFound, match="model 'nope' has no champion to check"):
        checks.run_check(factory, settings, actor=SCIENTIST, model="nope", source="upload", current=shifted())
    with pytest.raises(PermissionDenied):
        checks.run_check(factory, settings, actor=VIEWER, model="churn", source="upload", current=shifted())
    with pytest.raises(InvalidInput, match="drift source 'stream' is unknown"):
        checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="stream")
    with pytest.raises(InvalidInput, match="threshold 1.5 is not a p-value"):
        checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="upload", current=shifted(),
                             threshold=1.5)
    assert [e.actor for e in audit_events(factory, "permission.denied")] == ["vic"]


# -- the job ---------------------------------------------------------------------------------------

def run_job(trained, job_id: int) -> job_queue.JobView:
    assert runner.run_next(trained.factory, trained.settings, "test-worker") == job_id
    with trained.factory() as s:
        return job_queue.get(s, job_id)


def test_clicked_job_checks_an_uploaded_batch_as_its_creator(trained):
    settings, factory = trained.settings, trained.factory
    staged = settings.home / "uploads" / "drift-batch.csv"
    staged.parent.mkdir(parents=True)
    shifted().to_csv(staged, index=False)
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=SCIENTIST, kind="drift.check", params={
            "model": "churn", "source": "upload", "file": str(staged), "filename": "batch.csv", "report": False}).id
    job = run_job(trained, job_id)
    assert job.status == "succeeded", job.log
    assert job.result["status"] == "checked" and job.result["drift_detected"]
    assert "monthly_charges" in job.result["drifted"] and "drift check #" in job.log
    with factory() as s:
        check = checks.get(s, job.result["check_id"])
    assert (check.job_id, check.created_by, check.window) == (job_id, "sam", "file batch.csv")
    assert audit_events(factory, "drift.checked")[-1].actor == "sam"


def test_scheduled_job_acts_as_the_system_and_an_idle_window_is_a_result(trained):
    factory = trained.factory
    schedule = system_actor("schedule:drift-churn")
    with transaction(factory) as s:
        idle = job_queue.enqueue(s, actor=schedule, kind="drift.check",
                                 params={"model": "churn", "source": "window"}).id
    job = run_job(trained, idle)
    assert job.status == "succeeded" and job.result["status"] == "insufficient_data"
    assert "0 prediction(s) of churn" in job.result["reason"]

    log_predictions(factory, shifted(200, seed=8))
    with transaction(factory) as s:
        busy = job_queue.enqueue(s, actor=schedule, kind="drift.check",
                            params={"model": "churn", "source": "window", "report": False}).id
    job = run_job(trained, busy)
    assert job.status == "succeeded" and job.result["drift_detected"], job.log
    event = audit_events(factory, "drift.checked")[-1]
    assert event.actor == "system:drift-check"
    assert json.loads(event.details_json)["reason"] == "scheduled (system:schedule:drift-churn)"


def test_job_refuses_a_batch_outside_the_workspace(trained, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    shifted().to_csv(outside, index=False)
    with transaction(trained.factory) as s:
        job_id = job_queue.enqueue(s, actor=SCIENTIST, kind="drift.check",
                              params={"model": "churn", "source": "upload", "file": str(outside)}).id
    job = run_job(trained, job_id)
    assert job.status == "failed" and "is outside the workspace" in job.error


def test_a_staged_batch_is_deleted_when_its_check_ends_and_the_caller_s_own_file_is_kept(trained, tmp_path):
    settings, factory = trained.settings, trained.factory
    staged = [checks.stage_upload(settings, "batch.csv", shifted().to_csv(index=False).encode())
              for _ in range(2)]
    with transaction(factory) as s:
        ok = job_queue.enqueue(s, actor=SCIENTIST, kind="drift.check", params={
            "model": "churn", "source": "upload", "file": str(staged[0]), "filename": "batch.csv", "report": False}).id
        refused = job_queue.enqueue(s, actor=SCIENTIST, kind="drift.check", params={
            "model": "churn", "version": 9, "source": "upload", "file": str(staged[1]), "filename": "batch.csv"}).id
    assert all(p.is_file() for p in staged)
    assert run_job(trained, ok).status == "succeeded"
    failed = run_job(trained, refused)
    assert failed.status == "failed" and "version 9 has no reference statistics" in failed.error
    assert not any(p.exists() for p in staged)  # stored or refused: the uploaded data is gone either way

    own = tmp_path / "drift-mine.csv"  # a file the CLI user pointed at is theirs, even with a staged-like name
    shifted().to_csv(own, index=False)
    checks.run_check(factory, settings, actor=SCIENTIST, model="churn", source="upload", current=own, report=False)
    assert own.is_file()


def test_staged_batches_whose_job_never_ran_are_swept_after_a_day(trained):
    import os
    import time

    home = trained.settings.home
    old = checks.stage_upload(trained.settings, "old.csv", b"a\n1\n")
    os.utime(old, (time.time() - 25 * 3600,) * 2)  # its job was cancelled while queued, a day ago
    recent = checks.stage_upload(trained.settings, "recent.csv", b"a\n1\n")
    unrelated = home / "uploads" / "notes.txt"
    unrelated.write_text("not a staged batch")
    os.utime(unrelated, (time.time() - 48 * 3600,) * 2)
    fresh = checks.stage_upload(trained.settings, "new.csv", b"a\n1\n")  # staging a batch sweeps the stale ones
    assert not old.exists() and recent.is_file() and fresh.is_file() and unrelated.is_file()


def test_report_samples_whose_check_or_job_never_came_are_swept_after_a_day(trained):
    import os
    import time

    from core.monitoring import report
    from core.training import runs

    with trained.factory() as s:
        reference = runs.reference_for(s, model="churn", version=1)
    stale = report.write_sample(trained.settings, reference, small_churn(20, seed=4), rows=20)
    os.utime(stale, (time.time() - 25 * 3600,) * 2)  # SIGKILLed before its check committed, a day ago
    kept = report.write_sample(trained.settings, reference, small_churn(20, seed=5), rows=20)
    assert report.sweep_samples(trained.settings, older_than_s=24 * 3600) == [stale]
    assert not stale.exists() and kept.is_file()
    assert report.sample_path(report.report_for(kept)) == kept  # where its check's report job looks
