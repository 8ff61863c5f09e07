"""The job queue on both backends: claiming, progress, cancel, failure, reaping."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from core import audit
from core.actors import Actor, cli_actor
from core.errors import InvalidInput, PermissionDenied
from core.platform import job_queue
from core.platform.database import transaction
from db.models import AuditEvent, Job, utcnow
from jobs.runner import run_next
from tests.support.waiting import wait_until

ADMIN = cli_actor()


def enqueue(factory, kind="diagnostic.sleep", params=None, actor=ADMIN) -> int:
    with transaction(factory) as s:
        return job_queue.enqueue(s, actor=actor, kind=kind, params=params or {"seconds": 0}).id


def status(factory, job_id: int) -> str:
    with factory() as s:
        return job_queue.get(s, job_id).status


def test_enqueue_checks_kind_and_role(factory):
    with pytest.raises(InvalidInput, match="kinds are"):
        enqueue(factory, kind="nope")
    with pytest.raises(PermissionDenied, match="viewer"):
        enqueue(factory, actor=Actor("vera", "viewer"))
    with factory() as s:
        denied = s.query(AuditEvent).filter_by(action="permission.denied", actor="vera").count()
    assert denied == 1


@pytest.mark.parametrize("kind", ["audit.verify", "predictions.retention", "monitor.performance", "schedules.sync"])
def test_only_admins_queue_maintenance_kinds(factory, kind):
    for role in ("scientist", "approver"):
        with pytest.raises(PermissionDenied, match="jobs.maintenance.*'admin'"):
            enqueue(factory, kind=kind, params={}, actor=Actor(f"{role}-1", role, "token"))
    with factory() as s:
        denied = s.query(AuditEvent).filter_by(action="permission.denied", subject=f"job:{kind}").count()
        assert s.query(Job).filter_by(kind=kind).count() == 0
    assert denied == 2
    job_id = enqueue(factory, kind=kind, params={}, actor=Actor("ann", "admin"))
    assert job_queue.acting_as(kind, "ann").role == "admin"
    assert status(factory, job_id) == "queued"
    enqueue(factory, kind="diagnostic.sleep", actor=Actor("sam", "scientist"))  # scientists keep the diagnostic


def test_each_job_is_claimed_exactly_once_by_concurrent_workers(factory):
    ids = [enqueue(factory) for _ in range(30)]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            with transaction(factory) as s:
                job = job_queue.claim(s, worker=name)
                if job is None:
                    return
                with lock:
                    claimed.append((name, job.id))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(job_id for _, job_id in claimed) == ids


def test_run_next_records_success_with_progress_and_log(factory, settings):
    job_id = enqueue(factory, params={"seconds": 1})
    assert run_next(factory, settings, "w1") == job_id
    with factory() as s:
        job = job_queue.get(s, job_id)
    assert (job.status, job.progress, job.result) == ("succeeded", 1.0, {"slept_seconds": 1.0})
    assert "started on w1" in job.log and "succeeded after" in job.log
    assert run_next(factory, settings, "w1") is None


def test_failed_job_keeps_reason_and_traceback(factory, settings):
    with transaction(factory) as s:
        audit.record(s, ADMIN, "test.event", "x", {})
    with transaction(factory) as s:  # break the chain so the verify job fails
        s.query(AuditEvent).filter_by(action="test.event").update({"subject": "tampered"})
    job_id = enqueue(factory, kind="audit.verify", params={})
    run_next(factory, settings, "w1")
    with factory() as s:
        job = job_queue.get(s, job_id)
    assert job.status == "failed"
    assert "audit chain broken" in job.error and "was altered" in job.error and "\n" not in job.error
    # the traceback is kept apart, for admins only, without the server's folders
    assert "Traceback" not in job.log and "failed: audit chain broken" in job.log
    with factory() as s:
        trace = job_queue.traceback_of(s, actor=ADMIN, job_id=job_id)
        with pytest.raises(PermissionDenied):
            job_queue.traceback_of(s, actor=Actor("vic", "viewer"), job_id=job_id)
    assert trace.startswith("Traceback") and str(settings.home) not in trace and "<leanops>/" in trace


def test_cancel_queued_and_running(factory, settings):
    queued = enqueue(factory)
    with transaction(factory) as s:
        job_queue.cancel(s, actor=ADMIN, job_id=queued)
    with factory() as s:
        assert job_queue.get(s, queued).status == "cancelled"
    with pytest.raises(InvalidInput, match="already cancelled"):
        with transaction(factory) as s:
            job_queue.cancel(s, actor=ADMIN, job_id=queued)

    running = enqueue(factory, params={"seconds": 30})
    result: list[int | None] = []
    t = threading.Thread(target=lambda: result.append(run_next(factory, settings, "w1")))
    t.start()
    wait_until(lambda: status(factory, running) == "running", timeout=30, what=f"job {running} to start running")
    with transaction(factory) as s:
        job_queue.cancel(s, actor=ADMIN, job_id=running)
    t.join(timeout=10)
    assert not t.is_alive(), "a cancelled job must stop at its next progress report"
    with factory() as s:
        job = job_queue.get(s, running)
    assert (job.status, job.error) == ("cancelled", "cancelled by a user")


def test_reaper_fails_jobs_without_heartbeat(factory):
    stale, fresh = enqueue(factory), enqueue(factory)
    with transaction(factory) as s:
        job_queue.claim(s, worker="dead-worker")
        job_queue.claim(s, worker="live-worker")
        s.get(Job, stale).heartbeat_at = utcnow() - timedelta(seconds=120)
    with transaction(factory) as s:
        assert job_queue.reap_stale(s, stale_after=30) == [stale]
    with factory() as s:
        reaped, alive = job_queue.get(s, stale), job_queue.get(s, fresh)
        events = s.query(AuditEvent).filter_by(action="job.failed", actor="system:reaper").count()
    assert reaped.status == "failed" and "dead-worker stopped responding" in reaped.error
    assert alive.status == "running"
    assert events == 1
