"""Versions MLflow is creating that LeanOps has not committed yet, and the sweep that takes them back.

Training registers a version last, in three steps (``core.training.workflow``):

1. ``begin``: a ``pending_registrations`` row keyed by the MLflow run, committed before MLflow is asked;
2. MLflow creates the version carrying the tag ``leanops.pending`` (in the same call, so no moment shows
   the version without it); LeanOps stores the run's results and the version's gates and marks the row
   ``committed``, in one transaction;
3. ``finish``: the tag is removed, then the row.

A process killed anywhere in between leaves a row. ``sweep`` (run by every process that opens the
workspace: the worker's reaper pass, the dashboard, the API, the CLI) finishes a committed one (removes
the tag) and takes back one whose job has stopped: the run's versions are deleted in MLflow (each
deletion audited as ``model.version_deleted``), the MLflow run ends FAILED and the run row fails. So
MLflow never shows a version without its gates unless it carries the pending tag, and no pending tag
outlives its job's reaping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.errors import NotFound
from core.platform import job_queue, mlflow_store
from core.platform.database import transaction
from core.training import runs
from db.models import PendingRegistration, TrainingRun, utcnow

TAG = mlflow_store.TAG_PREFIX + "pending"
REAPER = "system:reaper"
# A registration started outside a job (``cli.py train`` in a terminal) has no heartbeat to go stale: its row
# is taken back once it is this old (registering and committing take seconds).
ORPHAN_AFTER = timedelta(minutes=10)

Log = Callable[[str], None]


def begin(session: Session, *, mlflow_run_id: str, training_run_id: int, job_id: int | None, model_name: str) -> None:
    """Record that ``mlflow_run_id`` is about to register a version of ``model_name`` (commit before asking MLflow)."""
    session.add(PendingRegistration(mlflow_run_id=mlflow_run_id, training_run_id=training_run_id, job_id=job_id,
                                    model_name=model_name, state="registering"))


def committed(session: Session, *, mlflow_run_id: str) -> None:
    """In the transaction that stores the version's run and gates: the version may lose its pending tag."""
    session.execute(update(PendingRegistration).where(PendingRegistration.mlflow_run_id == mlflow_run_id)
                    .values(state="committed"))


def finish(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, mlflow_run_id: str, name: str,
           version: int) -> None:
    """Remove the version's pending tag, then the row (a kill between the two: ``sweep`` removes the tag again)."""
    mlflow_store.untag_version(store, name=name, version=version, key=TAG)
    with transaction(factory) as session:
        session.execute(delete(PendingRegistration).where(PendingRegistration.mlflow_run_id == mlflow_run_id))


def take_back(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, name: str, mlflow_run_id: str,
              job_id: int | None, reason: str, log: Log) -> list[int]:
    """Delete every version MLflow has from ``mlflow_run_id`` (each deletion audited), forget its pending row.
    The versions it deleted."""
    deleted = []
    for number in mlflow_store.versions_of_run(store, name=name, run_id=mlflow_run_id):
        mlflow_store.delete_version(store, name=name, version=number)
        with transaction(factory) as session:
            audit.record(session, REAPER, "model.version_deleted", f"model:{name}",
                         {"version": number, "mlflow_run": mlflow_run_id, "job": job_id, "reason": reason})
        log(f"deleted {name} version {number}: {reason}")
        deleted.append(number)
    with transaction(factory) as session:
        session.execute(delete(PendingRegistration).where(PendingRegistration.mlflow_run_id == mlflow_run_id))
    return deleted


def _stopped(session: Session, row: PendingRegistration, *, stale_after: float) -> str | None:
    """Why the registration's process is gone (its job ended or went silent; a job-less one too old), or None."""
    now = utcnow()
    if row.job_id is None:
        return "its training process stopped before LeanOps stored its run and gates" \
            if row.created_at < now - ORPHAN_AFTER else None
    try:
        job = job_queue.get(session, row.job_id)
    except NotFound:
        return f"its training job {row.job_id} is gone"
    if job.status in job_queue.FINISHED:
        return f"its training job {row.job_id} ended ({job.status}) before LeanOps stored its run and gates"
    beat = job.heartbeat_at or job.started_at
    if job.status == "running" and beat is not None and beat < now - timedelta(seconds=stale_after):
        return f"its training job {row.job_id} stopped responding before LeanOps stored its run and gates"
    return None


def sweep(factory: sessionmaker[Session], settings: Any, *, log: Log | None = None) -> dict[str, list[Any]]:
    """Finish committed registrations and take back those whose job stopped (see the module docstring).

    Cheap when nothing is pending (one query; MLflow is not touched). Returns what it did.
    """
    say: Log = log or (lambda line: None)
    with factory() as session:
        rows = list(session.scalars(select(PendingRegistration).order_by(PendingRegistration.created_at)))
        if not rows:
            return {"finished": [], "taken_back": []}
        why = {row.mlflow_run_id: _stopped(session, row, stale_after=settings.job_stale_seconds) for row in rows
               if row.state != "committed"}
        recorded = {row.mlflow_run_id: (run.model_version if (run := session.get(TrainingRun, row.training_run_id))
                                        and run.status == "succeeded" else None) for row in rows}
    store = mlflow_store.store_for(settings)
    done: dict[str, list[Any]] = {"finished": [], "taken_back": []}
    for row in rows:
        version = recorded[row.mlflow_run_id]
        if row.state == "committed" and version is not None:
            finish(factory, store, mlflow_run_id=row.mlflow_run_id, name=row.model_name, version=version)
            done["finished"].append(row.model_name)
            continue
        reason = why.get(row.mlflow_run_id) if row.state != "committed" else "no version was recorded"
        if reason is None:
            continue  # its job is alive: it will commit or undo this itself
        gone = take_back(factory, store, name=row.model_name, mlflow_run_id=row.mlflow_run_id, job_id=row.job_id,
                         reason=reason, log=say)
        try:
            if mlflow_store.run_info(store, row.mlflow_run_id)["status"] not in ("FAILED", "KILLED"):
                mlflow_store.end_run(store, row.mlflow_run_id, status="FAILED")
        except NotFound:
            pass
        with transaction(factory) as session:
            runs.fail(session, run_id=row.training_run_id, status="failed", error=reason)
        done["taken_back"].extend(f"{row.model_name} v{v}" for v in gone)
    return done
