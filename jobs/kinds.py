"""Every job kind the worker runs: ``ADAPTERS`` pairs each ``JobKind`` (core/platform/job_queue.py: name,
permission, attempts) with its thin adapter here. An adapter takes (ctx, params) and returns a JSON-able result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.actors import system_actor
from core.platform import job_queue
from core.platform.database import transaction
from core.platform.job_queue import JobKind
from jobs import drift, drift_report, monitor, retrain, train


@dataclass(frozen=True)
class Adapter:
    """How the worker runs a kind: ``run(ctx, params)``, and for kinds with side effects outside the metadata DB
    (an MLflow run, a registered version) ``cleanup(factory, settings, job_id, log)``, which finishes a job whose
    worker stopped (killed, lost): the reaper calls it in the pass that fails the job."""

    run: Callable[[Any, dict[str, Any]], dict[str, Any]]
    cleanup: Callable[..., Any] | None = None


def adapter(kind: str) -> Adapter:
    """The adapter of the kind a job row names (``InvalidInput`` when this version knows no such kind)."""
    return ADAPTERS[job_queue.kind_named(kind)]


def diagnostic_sleep(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Check that workers run jobs: sleeps in steps, reporting progress (and honouring cancel)."""
    seconds = float(params.get("seconds", 10))
    steps = max(int(seconds), 1)
    for i in range(steps):
        ctx.progress(i / steps, f"step {i + 1} of {steps}")
        time.sleep(seconds / steps)
    return {"slept_seconds": seconds}


def aliases_sync(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Set MLflow's aliases to LeanOps' (one model, or every one); put back and alert a move made in MLflow."""
    from core.registry import projection

    return projection.sync_aliases(ctx.factory, ctx.settings, model=params.get("model"))


def audit_verify(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Walk the audit chain against its signed checkpoints; the verdict is recorded as whoever queued the job.

    The result carries the newest checkpoint (seq, hash, signature), so the job history holds copies."""
    from core import audit_checkpoints

    check = audit_checkpoints.verify_and_record(
        ctx.factory, ctx.settings, actor=ctx.actor,
        progress=lambda done, total: ctx.progress(done / max(total, 1), "verifying"))
    if not check.ok:
        raise RuntimeError(f"audit chain broken: {check.result.reason}")
    return check.as_dict()


def audit_checkpoint(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Sign the chain's head when LEANOPS_AUDIT_CHECKPOINT_EVENTS events came or an hour passed."""
    from core import audit_checkpoints

    cp = audit_checkpoints.write_if_due(ctx.factory, ctx.settings, actor=system_actor("audit-checkpoint"))
    return {"written": cp is not None, "checkpoint": cp.as_dict() if cp else audit_checkpoints.latest(ctx.settings)}


def predictions_retention(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Delete prediction log rows (and their feedback) older than the retention period, in chunks."""
    from core.platform.prediction_log import parquet as prediction_store
    from core.platform.prediction_log import retention as predictions

    days = int(params.get("days") or ctx.settings.prediction_retention_days)
    result = predictions.purge(ctx.factory, actor=system_actor("prediction-retention"), days=days,
                               chunk=int(params.get("chunk") or 5000),
                               progress=lambda deleted: ctx.progress(0.5, f"{deleted} rows deleted"))
    # the compacted hours go whole: every file of an hour that ended before the cutoff
    result["partition_files"] = prediction_store.drop_partitions(
        ctx.settings.data_store, before=datetime.fromisoformat(result["before"]))
    return result


def predictions_compact(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Move the prediction log's closed hours into Parquet partitions (one compactor at a time: a lease)."""
    import os
    import socket

    from core.platform.prediction_log import parquet as prediction_store

    return prediction_store.compact(
        ctx.factory, ctx.settings.data_store, actor=system_actor("prediction-compaction"),
        holder=f"{socket.gethostname()}:{os.getpid()}"[:255], scratch=ctx.settings.home / "tmp" / "compaction",
        grace_minutes=int(params.get("grace_minutes") or 15), progress=lambda stage: ctx.progress(0.5, stage))


def schedules_sync(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Drift and retrain schedules follow the champions and the policy (after a promotion or a policy save)."""
    from core.retraining import model_schedules

    with transaction(ctx.factory) as session:
        return model_schedules.sync_model_schedules(session, ctx.settings)


def retrain_consider(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Whether a stored drift check or a new dataset version starts a retrain, by policy."""
    from core.retraining import triggers

    return triggers.consider(ctx.factory, ctx.settings, params)


def datasets_sweep(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Remove what killed uploads left in the data store: temporary files, and version files no row points at."""
    from core.data import datasets

    with ctx.factory() as session:
        sweep = datasets.sweep_store(session, store=ctx.settings.data_store,
                                     older_than_s=float(params.get("older_than_s") or 3600))
    return {"temporary": sweep.temporary, "orphans": sweep.orphans}


def batch_score(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Score an uploaded file, a dataset version or a model's batch policy (source → destination)."""
    from core.serving import batch_jobs

    return batch_jobs.run(ctx.factory, ctx.settings, actor=ctx.actor, job_id=ctx.job_id, params=params,
                          progress=ctx.progress)


def gates_refresh(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The gates of the versions someone may act on, evaluated again under the policy just saved."""
    from core.promotion import gates

    return gates.refresh(ctx.factory, ctx.settings)


ADAPTERS: dict[JobKind, Adapter] = {
    job_queue.GATES_REFRESH: Adapter(gates_refresh),
    job_queue.DIAGNOSTIC_SLEEP: Adapter(diagnostic_sleep),
    job_queue.TRAIN: Adapter(train.run, cleanup=train.clean_up),
    job_queue.DRIFT_CHECK: Adapter(drift.run),
    job_queue.RETRAIN: Adapter(retrain.run, cleanup=train.clean_up),
    job_queue.AUDIT_VERIFY: Adapter(audit_verify),
    job_queue.AUDIT_CHECKPOINT: Adapter(audit_checkpoint),
    job_queue.PREDICTIONS_RETENTION: Adapter(predictions_retention),
    job_queue.PREDICTIONS_COMPACT: Adapter(predictions_compact),
    job_queue.MONITOR_PERFORMANCE: Adapter(monitor.run),
    job_queue.DATASETS_SWEEP: Adapter(datasets_sweep),
    job_queue.SCHEDULES_SYNC: Adapter(schedules_sync),
    job_queue.ALIASES_SYNC: Adapter(aliases_sync),
    job_queue.RETRAIN_CONSIDER: Adapter(retrain_consider),
    job_queue.DRIFT_REPORT: Adapter(drift_report.run),
    job_queue.BATCH_SCORE: Adapter(batch_score),
}
