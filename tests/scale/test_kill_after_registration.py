"""A worker SIGKILLed right after MLflow created a model version: the reaper's pass leaves no version
without its gates, the MLflow run FAILED and the run row failed (issue 17 item 4).

The kill lands at that exact point without touching our code: the metadata DB stalls the statement
that records the run (a trigger that takes minutes: a cross join on SQLite, ``pg_sleep`` on
PostgreSQL), which runs right after the version is registered. The test waits until MLflow lists the
version, SIGKILLs the real ``cli.py worker`` process, and starts a second worker whose reaper must
finish the clean-up in the pass that fails the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select, text

from core.platform import job_queue, mlflow_store
from core.platform.database import transaction
from core.training import pipeline, runs
from core.training.spec import parse_spec
from db.models import GateEvaluation, TrainingRun
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, add_dataset, small_churn

ROOT = Path(__file__).resolve().parents[2]
STALE = 3.0  # seconds without a heartbeat before the reaper fails a job


def _stall_recording(factory) -> None:
    """Make recording a successful run take minutes: the worker is caught between MLflow and our commit."""
    with transaction(factory) as s:
        if s.bind.dialect.name == "sqlite":
            s.execute(text("CREATE TABLE stall (x INTEGER)"))
            s.execute(text("INSERT INTO stall (x) VALUES " + ",".join(f"({i})" for i in range(1500))))
            s.execute(text("CREATE TRIGGER stall_success BEFORE UPDATE OF status ON training_runs "
                           "WHEN NEW.status = 'succeeded' BEGIN "
                           "SELECT count(*) FROM stall a, stall b, stall c; END"))
        else:
            s.execute(text("CREATE FUNCTION stall_success() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN PERFORM pg_sleep(600); RETURN NEW; END $$"))
            s.execute(text("CREATE TRIGGER stall_success BEFORE UPDATE ON training_runs FOR EACH ROW "
                           "WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION stall_success()"))


def _end_orphaned_backend(factory) -> None:
    """PostgreSQL notices a dead client only when it next reads from it, not during ``pg_sleep``: end the
    killed worker's stalled backend now, as its next read would (the statement never completes)."""
    with transaction(factory) as s:
        if s.bind.dialect.name != "sqlite":
            s.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE wait_event = 'PgSleep' AND datname = current_database()"))


def _worker(settings) -> subprocess.Popen:
    env = {**os.environ, "LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url,
           "LEANOPS_QUEUE_POLL_SECONDS": "0.5", "LEANOPS_JOB_HEARTBEAT_SECONDS": "0.5",
           "LEANOPS_JOB_STALE_SECONDS": str(STALE), "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen([sys.executable, "cli.py", "worker", "--jobs-only"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_worker_killed_right_after_version_creation_leaves_no_version_without_gates(factory, workspace):
    from mlflow import MlflowClient

    mlflow = MlflowClient(tracking_uri=workspace.mlflow_uri, registry_uri=workspace.mlflow_uri)
    add_dataset(factory, workspace, small_churn())
    with transaction(factory) as s:
        job_id = pipeline.launch(s, actor=SCIENTIST, spec=parse_spec(
            {"dataset": "churn", "target": "churn", "params": {"n_estimators": 20}})).id
    _stall_recording(factory)
    first = _worker(workspace)
    second = None
    try:
        deadline = time.monotonic() + 180
        while not mlflow.search_model_versions("name = 'churn'"):
            assert first.poll() is None, "the worker exited before registering"
            assert time.monotonic() < deadline, "no version was registered"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.monotonic()
        _end_orphaned_backend(factory)

        # What the kill left: a version in MLflow, its run row still running, no gates.
        [left] = mlflow.search_model_versions("name = 'churn'")
        with factory() as s:
            row = runs.for_job(s, job_id)
            assert s.scalar(select(func.count()).select_from(GateEvaluation)) == 0
        assert row.status == "running" and left.run_id == row.mlflow_run_id

        second = _worker(workspace)  # its reaper fails the job and cleans up in the same pass
        deadline = time.monotonic() + 120
        while True:
            with factory() as s:  # the row itself (runs.for_job shows the job's verdict meanwhile)
                job, row = job_queue.get(s, job_id), runs.for_job(s, job_id)
                recorded = s.get(TrainingRun, row.id).status
            if recorded != "running":
                break
            assert time.monotonic() < deadline, f"the reaper did not clean up job {job_id}: {job.status}"
            time.sleep(0.2)
        cleaned_after = time.monotonic() - killed_at
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert job.status == "failed" and "stopped responding" in (job.error or "") and recorded == "failed"
    assert row.status == "failed" and row.error == job.error and row.model_version is None
    assert mlflow.search_model_versions("name = 'churn'") == []
    assert mlflow_store.run_info(mlflow_store.store_for(workspace), row.mlflow_run_id)["status"] == "FAILED"
    assert f"deleted churn version {left.version}" in job.log and "marked FAILED" in job.log
    # The job goes stale STALE s after its last beat; the second worker needs a few seconds to start.
    assert cleaned_after < STALE + 30, cleaned_after
    print(f"\nkilled after version creation; cleaned up {cleaned_after:.1f} s later (stale after {STALE:.0f} s)")
