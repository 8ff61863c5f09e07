"""The job queue: rows in the metadata DB that workers claim atomically and report progress on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, case, desc, func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import PERMISSIONS, require
from core.actors import Actor, system_actor
from core.errors import InvalidInput, NotFound
from db.models import Job, utcnow


@dataclass(frozen=True)
class JobKind:
    """A kind of job as the queue knows it; ``jobs/kinds.py`` ``ADAPTERS`` pairs each with the code that runs it.

    ``name`` is stored in job rows and schedules, so it is never renamed. ``permission`` is what queueing a job
    of this kind takes. ``attempts`` is how many runs a failing job gets in all: ``finish`` queues the next one.
    """

    name: str
    permission: str
    attempts: int = 1


DIAGNOSTIC_SLEEP = JobKind("diagnostic.sleep", "jobs.launch")
TRAIN = JobKind("train", "training.launch")
DRIFT_CHECK = JobKind("drift.check", "drift.run")
RETRAIN = JobKind("retrain", "training.launch")
# Maintenance (retention deletes logged predictions, the audit walk and checkpoints, the performance watch
# that may roll a champion back, the sweep of files a killed upload left) is the system's work: only admins
# (and the system and CLI actors) may queue it by hand.
AUDIT_VERIFY = JobKind("audit.verify", "jobs.maintenance")
AUDIT_CHECKPOINT = JobKind("audit.checkpoint", "jobs.maintenance")  # sign the audit chain's head
PREDICTIONS_RETENTION = JobKind("predictions.retention", "jobs.maintenance")
PREDICTIONS_COMPACT = JobKind("predictions.compact", "jobs.maintenance")  # closed hours of the log → Parquet
MONITOR_PERFORMANCE = JobKind("monitor.performance", "jobs.maintenance")
DATASETS_SWEEP = JobKind("datasets.sweep", "jobs.maintenance")  # files no dataset version points at
# Follow-ups: the loop's backward arrows, queued in the same transaction as the event that asks for them (a
# promotion or a policy save re-syncs schedules, an alias move is projected onto MLflow, a drift check or a
# new dataset version may start a retrain), run by the worker, retried when they fail.
SCHEDULES_SYNC = JobKind("schedules.sync", "jobs.maintenance", attempts=3)
ALIASES_SYNC = JobKind("aliases.sync", "jobs.maintenance", attempts=3)  # LeanOps' aliases → MLflow's
RETRAIN_CONSIDER = JobKind("retrain.consider", "training.launch", attempts=3)
DRIFT_REPORT = JobKind("drift.report", "drift.run", attempts=2)  # the Evidently HTML of a stored drift check
BATCH_SCORE = JobKind("batch.score", "jobs.launch")  # batch scoring: an upload, a dataset, or a model's batch policy

# Stored gate results follow the policy: a policy save re-evaluates the gates of every version someone may act
# on (champion, challenger, versions waiting for approval), so no page shows the old policy's verdict.
GATES_REFRESH = JobKind("gates.refresh", "jobs.maintenance", attempts=3)

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (GATES_REFRESH,
    DIAGNOSTIC_SLEEP, TRAIN, DRIFT_CHECK, RETRAIN, AUDIT_VERIFY, AUDIT_CHECKPOINT, PREDICTIONS_RETENTION,
    PREDICTIONS_COMPACT, MONITOR_PERFORMANCE, DATASETS_SWEEP, SCHEDULES_SYNC, ALIASES_SYNC, RETRAIN_CONSIDER,
    DRIFT_REPORT, BATCH_SCORE)}
ACTIVE = ("queued", "running")
# A user (or a token's owner) may have at most this many jobs waiting at once, so no one fills the queue ahead of
# the others (the system's and the CLI's own work is not counted); maintenance kinds are claimed first.
QUEUED_PER_USER = 20
MAINTENANCE = frozenset(k.name for k in KINDS.values() if k.permission == "jobs.maintenance")
FINISHED = ("succeeded", "failed", "cancelled")
LOG_LIMIT = 200_000  # characters of log kept per job; older lines are cut


class JobCancelled(Exception):
    """Raised inside a running job when a user asked it to stop (at its next progress report)."""


def acting_as(kind: str, created_by: str) -> Actor:
    """Who a job acts as: its creator, with the role its launch was authorised for.

    Queueing checked the kind's permission; a system creator (a schedule, a trigger) acts as itself.
    """
    if created_by.startswith(("system:", "cli:")):
        return Actor(name=created_by, role="admin", kind="system" if created_by.startswith("system:") else "cli")
    return Actor(name=created_by, role=PERMISSIONS[kind_named(kind).permission], kind="job")


def kind_named(name: str) -> JobKind:
    """The kind a job row or a schedule names; ``InvalidInput`` listing the kinds when there is none."""
    found = KINDS.get(name)
    if found is None:
        raise InvalidInput(f"job kind {name!r} is unknown; kinds are: {', '.join(sorted(KINDS))}")
    return found


@dataclass(frozen=True)
class JobView:
    """What pages and the CLI see of a job."""

    id: int
    kind: str
    params: dict[str, Any]
    status: str
    progress: float
    stage: str
    error: str | None
    result: dict[str, Any] | None
    log: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    worker: str | None
    cancel_requested: bool

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(**{f: getattr(job, f) for f in cls.__dataclass_fields__})


def enqueue(session: Session, *, actor: Actor, kind: str, params: dict[str, Any] | None = None) -> Job:
    """Queue a job of the kind named ``kind``; a worker picks it up. Returns at once."""
    require(session, actor, kind_named(kind).permission, f"job:{kind}")
    _check_queued(session, actor)
    job = Job(kind=kind, params=params or {}, created_by=actor.name)
    session.add(job)
    session.flush()
    audit.record(session, actor, "job.queued", f"job:{job.id}", {"kind": kind, "params": job.params})
    return job


def _check_queued(session: Session, actor: Actor) -> None:
    """At most ``QUEUED_PER_USER`` queued jobs per person (a token counts for its owner); the system's and
    the CLI's own work is not limited."""
    if actor.name.startswith(("system:", "cli:")):
        return
    from core.accounts.auth import person_behind, token_names_of

    person = person_behind(session, actor.name)
    names = {actor.name, person, *token_names_of(session, person)}
    waiting = session.scalar(select(func.count()).select_from(Job)
                             .where(Job.status == "queued", Job.created_by.in_(names))) or 0
    if waiting >= QUEUED_PER_USER:
        raise InvalidInput(f"{person} already has {waiting} jobs waiting in the queue; the limit is "
                           f"{QUEUED_PER_USER} per user: wait for some to run, or cancel some on the Jobs page")


def claim(session: Session, *, worker: str, now: datetime | None = None) -> Job | None:
    """Atomically take the oldest queued job for ``worker``; None when the queue is empty.

    PostgreSQL skips rows another worker has locked; on both backends the guarded UPDATE
    (``status = 'queued'``) makes sure only one claimant wins a row.
    """
    now = now or utcnow()
    for _ in range(5):
        job_id = session.scalar(
            select(Job.id).where(Job.status == "queued")  # maintenance first, then the oldest
            .order_by(case((Job.kind.in_(MAINTENANCE), 0), else_=1), Job.id).limit(1).with_for_update(skip_locked=True)
        )
        if job_id is None:
            return None
        won = cast(CursorResult[Any], session.execute(  # a DML statement: a CursorResult, typed as Result
            update(Job).where(Job.id == job_id, Job.status == "queued")
            .values(status="running", worker=worker, started_at=now, heartbeat_at=now, stage="starting")
        )).rowcount
        if won:
            job = session.get(Job, job_id)
            session.refresh(job)
            return job
    return None


def heartbeat(session: Session, *, job_id: int, now: datetime | None = None) -> bool:
    """Mark the job alive; returns whether cancellation was requested."""
    session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(heartbeat_at=now or utcnow()))
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def report(session: Session, *, job_id: int, progress: float | None = None, stage: str | None = None,
           log: str | None = None) -> bool:
    """Record progress (0-1), the stage text and log lines; returns whether cancellation was requested."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if progress is not None:
        job.progress = min(max(float(progress), 0.0), 1.0)
    if stage is not None:
        job.stage = stage[:255]
    if log:
        job.log = (job.log + log)[-LOG_LIMIT:]
    job.heartbeat_at = utcnow()
    return job.cancel_requested


def finish(session: Session, *, job_id: int, status: str, error: str | None = None,
           result: dict[str, Any] | None = None, log: str | None = None, traceback: str | None = None) -> None:
    """Record how a job ended. ``error``: the one-line reason in words (everyone reads it); ``traceback``: kept
    for admins only (``traceback_of``), without workspace paths (``core.platform.failures``)."""
    if status not in FINISHED:
        raise InvalidInput(f"status {status!r} is not a final status {FINISHED}")
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status in FINISHED:  # e.g. reaped meanwhile: the first verdict stands
        return
    job.status, job.error, job.result, job.finished_at = status, error, result, utcnow()
    job.traceback = traceback
    if status == "failed":
        _retry(session, job)
    job.stage = {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}[status]
    if status == "succeeded":
        job.progress = 1.0
    if log:
        job.log = (job.log + log)[-LOG_LIMIT:]


def append_log(session: Session, *, job_id: int, log: str) -> None:
    """Add lines to a job's log, finished or not (the reaper's account of its clean-up)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    job.log = (job.log + log)[-LOG_LIMIT:]


def cancel(session: Session, *, actor: Actor, job_id: int) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next progress report."""
    require(session, actor, "jobs.cancel", f"job:{job_id}")
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status not in ACTIVE:
        raise InvalidInput(f"job {job_id} is already {job.status}")
    _check_owner(session, actor, job)
    if job.status == "queued":
        job.status, job.finished_at, job.stage = "cancelled", utcnow(), "cancelled"
    job.cancel_requested = True
    audit.record(session, actor, "job.cancelled", f"job:{job_id}", {"kind": job.kind, "was": job.status})
    return job


def _check_owner(session: Session, actor: Actor, job: Job) -> None:
    """Users cancel their own jobs (a token's jobs are its owner's); the system's, the CLI's, an admin's and
    anyone else's only an admin cancels. A refusal is audited."""
    from core.accounts.auth import person_behind
    from core.errors import PermissionDenied

    if actor.at_least("admin"):
        return
    creator = job.created_by
    if not creator.startswith(("system:", "cli:")) and person_behind(session, creator) == person_behind(
            session, actor.name):
        return
    job_id = job.id  # the refusal is recorded after the rollback, when the row is gone from the session
    denied = PermissionDenied(f"{actor.name} may cancel only their own jobs; job {job_id} ({job.kind}) was "
                              f"queued by {creator}: ask an admin")
    denied.after_rollback.append(lambda own: audit.record(
        own, actor, "permission.denied", f"job:{job_id}", {"permission": "jobs.cancel", "role": actor.role,
                                                          "queued_by": creator}))
    raise denied


def reap_stale(session: Session, *, stale_after: float, now: datetime | None = None) -> list[int]:
    """Fail running jobs whose worker stopped sending heartbeats (killed, crashed, lost its DB).

    They are failed, not requeued: a half-run training job may have side effects a rerun must not
    repeat blindly; the user relaunches (or the schedule fires again). Those side effects are undone
    right after, in the same reaper pass, by the kind's clean-up (``jobs/kinds.py`` ``ADAPTERS``,
    called by ``jobs.runner.reap``: the floor knows no stage).
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stale_after)
    found = list(session.scalars(select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)))
    stale = []
    for job in found:
        # Every process that opens the workspace reaps: only the one whose guarded UPDATE wins fails the job
        # (PostgreSQL re-checks the row after a concurrent reaper's commit; SQLite runs one writer at a time).
        won = cast(CursorResult[Any], session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running", Job.heartbeat_at < cutoff)
            .values(status="failed").execution_options(synchronize_session=False))).rowcount
        if not won:
            continue
        stale.append(job)
        job.status, job.finished_at, job.stage = "failed", now, "failed"
        job.error = (f"worker {job.worker} stopped responding: no heartbeat since "
                     f"{job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC (limit {stale_after:.0f} s)")
        audit.record(session, "system:reaper", "job.failed", f"job:{job.id}", {"reason": job.error})
        _retry(session, job)
    return [job.id for job in stale]


def _retry(session: Session, job: Job) -> None:
    """Queue the next attempt of a failed job whose kind gets more than one (``JobKind.attempts``), in the
    transaction that failed it."""
    attempt = int(job.params.get("attempt", 1))
    kind = KINDS.get(job.kind)  # a row of a kind this version no longer knows is not retried
    if kind is None or attempt >= kind.attempts:
        return
    retry = Job(kind=job.kind, params=job.params | {"attempt": attempt + 1, "retry_of": job.id},
                created_by=job.created_by)
    session.add(retry)
    session.flush()
    audit.record(session, system_actor("job-retry"), "job.queued", f"job:{retry.id}",
                 {"kind": job.kind, "params": retry.params})


def fail_worker_jobs(session: Session, *, worker: str, reason: str) -> None:
    for job_id in session.scalars(select(Job.id).where(Job.worker == worker, Job.status == "running")):
        finish(session, job_id=job_id, status="failed", error=reason)


def get(session: Session, job_id: int) -> JobView:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return JobView.of(job)


def traceback_of(session: Session, *, actor: Actor, job_id: int) -> str | None:
    """The traceback of a failed job (workspace paths removed): for admins only; None when it has none."""
    require(session, actor, "jobs.maintenance", f"job:{job_id}")
    if session.get(Job, job_id) is None:
        raise NotFound(f"no job {job_id}")
    return session.scalar(select(Job.traceback).where(Job.id == job_id))


def status_of(session: Session, *, job_id: int) -> str | None:
    """The status of job ``job_id``; None when there is no such job."""
    return session.scalar(select(Job.status).where(Job.id == job_id))


def active(session: Session, *, kind: str) -> list[JobView]:
    """Every queued or running job of ``kind``, oldest first."""
    return [JobView.of(j) for j in session.scalars(select(Job).where(Job.kind == kind, Job.status.in_(ACTIVE))
                                                    .order_by(Job.id))]


def list_jobs(session: Session, *, statuses: tuple[str, ...] | None = None, kind: str | None = None,
              limit: int = 50, offset: int = 0) -> list[JobView]:
    query = select(Job).order_by(desc(Job.id)).limit(limit).offset(offset)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    if kind:
        query = query.where(Job.kind == kind)
    return [JobView.of(j) for j in session.scalars(query)]


def counts(session: Session) -> dict[str, int]:
    return {status: n for status, n in session.execute(select(Job.status, func.count()).group_by(Job.status))}
