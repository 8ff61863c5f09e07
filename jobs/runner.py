"""The job wrapper: claim a queued job, run it with heartbeats and progress, record how it ended."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.errors import LeanOpsError, redact
from core.platform import failures
from core.platform import job_queue as core_jobs
from core.platform.database import transaction
from core.platform.job_queue import JobCancelled, acting_as
from core.settings import Settings
from jobs.kinds import adapter

log = logging.getLogger("leanops.jobs")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class JobContext:
    """What a running job may use: the DB, settings, and progress/log reporting."""

    job_id: int
    kind: str
    factory: sessionmaker[Session]
    settings: Settings
    created_by: str
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    _last_report: float = 0.0
    _pending_log: list[str] = field(default_factory=list)

    @property
    def actor(self) -> Actor:
        """Who the job acts as: its creator, with the role its launch was authorised for."""
        return acting_as(self.kind, self.created_by)

    def log(self, line: str) -> None:
        self._pending_log.append(f"{time.strftime('%H:%M:%S')} {line}\n")

    def progress(self, fraction: float, stage: str, *, force: bool = False) -> None:
        """Report progress; at most a few writes a second. Raises JobCancelled if asked to stop."""
        if self.cancel_requested.is_set():
            raise JobCancelled()
        now = time.monotonic()
        if not force and now - self._last_report < 0.25:
            return
        self._last_report = now
        text, self._pending_log = "".join(self._pending_log), []
        with transaction(self.factory) as session:
            if core_jobs.report(session, job_id=self.job_id, progress=fraction, stage=stage, log=text):
                self.cancel_requested.set()
        if self.cancel_requested.is_set():
            raise JobCancelled()

    def take_log(self) -> str:
        text, self._pending_log = "".join(self._pending_log), []
        return text


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext, interval: float) -> None:
        super().__init__(name=f"heartbeat-{ctx.job_id}", daemon=True)
        self.ctx, self.interval, self.stopped = ctx, interval, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with transaction(self.ctx.factory) as session:
                    if core_jobs.heartbeat(session, job_id=self.ctx.job_id):
                        self.ctx.cancel_requested.set()
            except Exception:  # a missed beat is retried; the reaper decides when it is too many
                log.warning("heartbeat for job %s failed", self.ctx.job_id, exc_info=True)


def run_next(factory: sessionmaker[Session], settings: Settings, worker: str) -> int | None:
    """Claim and run one queued job in this thread. Returns its id, or None if the queue was empty."""
    with transaction(factory) as session:
        job = core_jobs.claim(session, worker=worker)
        if job is None:
            return None
        job_id, kind, params, created_by = job.id, job.kind, dict(job.params), job.created_by
    ctx = JobContext(job_id=job_id, kind=kind, factory=factory, settings=settings, created_by=created_by)
    beat = _Heartbeat(ctx, settings.job_heartbeat_seconds)
    beat.start()
    status, error, result, trace = "succeeded", None, None, None
    started = time.monotonic()
    ctx.log(f"job {job_id} ({kind}) started on {worker}")
    try:
        result = adapter(kind).run(ctx, params)
    except JobCancelled:
        status, error = "cancelled", "cancelled by a user"
    except Exception as exc:  # noqa: BLE001 - recorded: the reason in words, the traceback for admins
        # One line in words for everyone (the Jobs page, the alert); the traceback, without the server's
        # folders, only for admins (job_queue.traceback_of).
        status, error = "failed", failures.reason_of(exc)
        trace = failures.clean_traceback(traceback.format_exc(), folders=[settings.home])
        ctx.log(f"failed: {error}")
        if not isinstance(exc, LeanOpsError):
            log.exception("job %s (%s) failed", job_id, kind)
    finally:
        beat.stopped.set()
    ctx.log(f"job {job_id} {status} after {time.monotonic() - started:.1f} s")
    with transaction(factory) as session:
        core_jobs.finish(session, job_id=job_id, status=status, error=error, result=result, log=ctx.take_log(),
                         traceback=trace)
    if status == "failed":
        alert_failure(factory, settings, job_id=job_id, kind=kind, params=params, error=error or "",
                      created_by=created_by)
    return job_id


# What a failed job was doing, in the words of an alert title ("retrain of loans failed: …").
JOB_WORDS = {"train": "training", "retrain": "retrain", "drift.check": "drift check", "drift.report": "drift report",
             "retrain.consider": "retrain decision", "schedules.sync": "schedule sync",
             "aliases.sync": "alias sync", "monitor.performance": "performance watch",
             "audit.verify": "audit verification", "batch.score": "batch scoring", "gates.refresh": "gate refresh"}


def alert_failure(factory: sessionmaker[Session], settings: Settings, *, job_id: int, kind: str,
                  params: dict, error: str, created_by: str) -> None:
    """Raise a job_failure alert for a job already recorded as failed; an alert problem never breaks the runner."""
    try:
        from core.alerts import notify

        # A train job's "model" is the estimator kind; the registered model is model_name (or the dataset's name).
        model = params.get("model_name") or (str(params.get("dataset") or "").split(":")[0] if kind == "train"
                                             else params.get("model")) or None
        what = JOB_WORDS.get(kind, f"job {kind}")
        title = f"{what} of {model} failed: {error}" if model else f"{what} (job {job_id}) failed: {error}"
        notify.notify(factory, settings, condition="job_failure", model=model, title=title,
                      message=f"Job {job_id} ({kind}, started by {created_by}) failed: {error}",
                      details={"job_id": job_id, "kind": kind, "started_by": created_by, "reason": error},
                      severity="critical", subject=f"job:{kind}:{model or ''}")
    except Exception:  # noqa: BLE001 - logged; the job's own record is already committed
        log.exception("job_failure alert for job %s failed", job_id)


def reap(factory: sessionmaker[Session], settings: Settings) -> list[int]:
    """Fail the jobs whose worker stopped, and finish each one's clean-up in the same pass."""
    with transaction(factory) as session:
        ids = core_jobs.reap_stale(session, stale_after=settings.job_stale_seconds)
        reaped = [core_jobs.get(session, job_id) for job_id in ids]
    for job in reaped:
        clean_up(factory, settings, job_id=job.id, kind=job.kind)
        alert_failure(factory, settings, job_id=job.id, kind=job.kind, params=dict(job.params or {}),
                      error=job.error or "", created_by=job.created_by)
    try:  # model versions a stopped job left pending in MLflow (one query when there are none)
        from core.training import pending

        pending.sweep(factory, settings, log=log.info)
    except Exception:  # noqa: BLE001 - the next pass retries; a reaper never stops on it
        log.warning("sweep of pending model versions failed", exc_info=True)
    return ids


def clean_up(factory: sessionmaker[Session], settings: Settings, *, job_id: int, kind: str) -> None:
    """Run the clean-up of a failed job's kind (its ``jobs.kinds.Adapter``); its lines go to the job's log.

    A clean-up that fails (say MLflow is down) is logged; what it left is finished later (the training
    workflow reconciles before each run), and the job's verdict stands either way.
    """
    hook = adapter(kind).cleanup if kind in core_jobs.KINDS else None
    if hook is None:
        return
    lines: list[str] = []
    try:
        hook(factory, settings, job_id, lambda line: lines.append(f"{time.strftime('%H:%M:%S')} {line}\n"))
    except Exception as exc:  # noqa: BLE001 - recorded on the job; never stops the reaper
        lines.append(f"{time.strftime('%H:%M:%S')} clean-up failed: {redact(f'{type(exc).__name__}: {exc}')}\n")
        log.warning("clean-up of job %s (%s) failed", job_id, kind, exc_info=True)
    if lines:
        try:
            with transaction(factory) as session:
                core_jobs.append_log(session, job_id=job_id, log="".join(lines))
        except Exception:  # noqa: BLE001 - the clean-up itself is done; only its account is lost
            log.warning("could not record the clean-up of job %s", job_id, exc_info=True)


def fail_own_running(factory: sessionmaker[Session], worker: str, reason: str,
                     settings: Settings | None = None) -> None:
    """On shutdown, a worker fails the jobs it was running instead of leaving them to the reaper
    (and, given ``settings``, cleans up after them at once)."""
    with transaction(factory) as session:
        failed = [(job.id, job.kind) for job in core_jobs.list_jobs(session, statuses=("running",), limit=1000)
                  if job.worker == worker]
        core_jobs.fail_worker_jobs(session, worker=worker, reason=reason)
    if settings is not None:
        for job_id, kind in failed:
            clean_up(factory, settings, job_id=job_id, kind=kind)
