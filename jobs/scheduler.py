"""All APScheduler wiring: the queue poller, the stale-job reaper and the cron schedules.

One ``Runtime`` per process (the dashboard's cached resource or ``cli.py worker``). The cron
schedules run only where the ``scheduler`` lease is held, so a deployment has exactly one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.actors import system_actor
from core.errors import InvalidInput
from core.platform import job_queue as core_jobs
from core.platform import leases, schedules
from core.platform.database import transaction
from core.settings import Settings
from db.models import Job
from db.session import make_engine
from jobs.runner import fail_own_running, reap, run_next, worker_id

log = logging.getLogger("leanops.scheduler")
LEASE = "scheduler"
LEASE_TTL = 45.0
SYNC_SECONDS = 10.0


@dataclass
class Runtime:
    settings: Settings
    factory: sessionmaker[Session]
    worker: str
    run_schedules: bool
    slots: int = 1
    scheduler: Any = None  # the APScheduler BackgroundScheduler (untyped), set by start()
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    applied: dict[str, tuple] = field(default_factory=dict)

    def run_slot(self) -> None:
        try:
            while run_next(self.factory, self.settings, self.worker) is not None:
                pass
        except Exception:
            log.exception("job slot crashed")
        finally:
            with self.lock:
                self.busy -= 1


_RUNTIME: Runtime | None = None
_START_LOCK = threading.Lock()


def start(settings: Settings, factory: sessionmaker[Session], *, run_schedules: bool = True,
          slots: int = 1) -> Runtime:
    """Start this process's scheduler (idempotent). Raises LeaseHeld if another owns the schedules."""
    global _RUNTIME
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    with _START_LOCK:
        if _RUNTIME is not None:
            return _RUNTIME
        rt = Runtime(settings=settings, factory=factory, worker=worker_id(), run_schedules=run_schedules, slots=slots)
        if run_schedules:
            with transaction(factory) as session:
                _release_if_dead(session)
                leases.acquire(session, name=LEASE, holder=rt.worker, ttl=LEASE_TTL)
        reap(factory, settings)
        stores: dict[str, object] = {"memory": MemoryJobStore()}
        if run_schedules:  # only the lease holder uses the table: job runners starting together would race to create it
            stores["default"] = SQLAlchemyJobStore(engine=make_engine(settings.db_url))
        sched = BackgroundScheduler(
            jobstores=stores,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
            timezone="UTC",
        )
        now = datetime.now(UTC)
        sched.add_job(poll_queue, "interval", seconds=settings.queue_poll_seconds, id="queue-poller",
                      jobstore="memory", replace_existing=True, next_run_time=now)
        if run_schedules:
            sched.add_job(sync_schedules, "interval", seconds=SYNC_SECONDS, id="schedule-sync",
                          jobstore="memory", replace_existing=True, next_run_time=now)
        rt.scheduler = sched
        _RUNTIME = rt
        sched.start()
        log.info("scheduler started as %s (schedules: %s)", rt.worker, run_schedules)
        return rt


def _release_if_dead(session: Session) -> None:
    """A scheduler killed on this host leaves its lease behind; take it back at once."""
    current = leases.holder(session, name=LEASE)
    if current is None:
        return
    host, _, rest = current.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        leases.release(session, name=LEASE, holder=current)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def stop(reason: str = "worker shut down during the job") -> None:
    global _RUNTIME
    with _START_LOCK:
        rt, _RUNTIME = _RUNTIME, None
    if rt is None:
        return
    rt.scheduler.shutdown(wait=False)
    fail_own_running(rt.factory, rt.worker, reason, rt.settings)
    if rt.run_schedules:
        with transaction(rt.factory) as session:
            leases.release(session, name=LEASE, holder=rt.worker)


def poll_queue() -> None:
    """Reap stale jobs; start a job slot when one is free and work is queued."""
    rt = _RUNTIME
    if rt is None:
        return
    reap(rt.factory, rt.settings)
    with rt.lock:
        if rt.busy >= rt.slots:
            return
        with rt.factory() as session:
            queued = session.scalar(select(func.count()).select_from(Job).where(Job.status == "queued"))
        if not queued:
            return
        rt.busy += 1
    # Daemon threads: a stopping process does not wait for a long fit; its jobs were failed first.
    threading.Thread(target=rt.run_slot, name="leanops-job", daemon=True).start()


def cron_trigger(cron: str) -> Any:
    """The APScheduler trigger of a stored cron (UTC): the one ``schedules.check_cron`` parsed at save."""
    return schedules.cron_trigger(cron)


def fire_schedule(name: str) -> None:
    """A cron schedule fired: queue its job as ``system:schedule:<name>``."""
    rt = _RUNTIME
    if rt is None:
        return
    with transaction(rt.factory) as session:
        row = next((s for s in schedules.list_schedules(session) if s.name == name), None)
        if row is None or row.paused:
            return
        job = core_jobs.enqueue(session, actor=system_actor(f"schedule:{name}"), kind=row.kind, params=row.params)
        schedules.note_fired(session, name=name, job_id=job.id)


def sync_schedules() -> None:
    """Renew the lease, mirror edited schedule rows into APScheduler, write next run times back."""
    from apscheduler.jobstores.base import JobLookupError

    rt = _RUNTIME
    if rt is None:
        return
    sched = rt.scheduler
    with transaction(rt.factory) as session:
        leases.acquire(session, name=LEASE, holder=rt.worker, ttl=LEASE_TTL)
        rows = schedules.snapshot(session)
    for name, state in rows.items():
        if rt.applied.get(name) == state:
            continue
        cron, paused, _ = state
        try:
            sched.add_job(fire_schedule, cron_trigger(cron), args=[name],
                          id=f"schedule:{name}", jobstore="default", replace_existing=True)
            if paused:
                sched.pause_job(f"schedule:{name}", jobstore="default")
        except (ValueError, InvalidInput):
            log.error("schedule %s has a cron APScheduler refuses: %r", name, cron)
        rt.applied[name] = state
    for name in set(rt.applied) - set(rows):
        try:
            sched.remove_job(f"schedule:{name}", jobstore="default")
        except JobLookupError:
            pass
        rt.applied.pop(name)
    with transaction(rt.factory) as session:
        for name in rows:
            job = sched.get_job(f"schedule:{name}", jobstore="default")
            schedules.note_next_run(session, name=name, next_run_at=job.next_run_time if job else None)
