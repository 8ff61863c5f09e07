"""Jobs page: queue, history with the failure reason, schedules with pause/resume."""

from __future__ import annotations

from datetime import timedelta

from core.actors import cli_actor
from core.platform import job_queue, schedules
from core.platform.database import transaction
from db.models import Job, utcnow


def test_reaped_job_shows_its_reason(open_page, factory):
    with transaction(factory) as s:
        job = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 5})
        job_queue.claim(s, worker="host:1:dead")
        s.get(Job, job.id).heartbeat_at = utcnow() - timedelta(minutes=5)
    with transaction(factory) as s:
        job_queue.reap_stale(s, stale_after=30)
    at = open_page("pages/jobs.py", role="viewer")
    assert not at.exception
    history = at.dataframe[0].value
    assert "stopped responding" in history.loc[history["job"] == job.id, "error"].iloc[0]
    assert not [b for b in at.button if b.label == "Queue diagnostic job"], "viewers cannot queue jobs"


def test_admin_pauses_and_resumes_a_schedule(open_page, factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="nightly", kind="audit.verify", cron="0 3 * * *")
    at = open_page("pages/jobs.py", role="admin")
    at.button(key="sched-nightly").click().run()
    with factory() as s:
        assert next(x for x in schedules.list_schedules(s) if x.name == "nightly").paused
    assert at.button(key="sched-nightly").label == "Resume"


def test_scientist_queues_and_cancels_a_diagnostic_job(open_page, factory):
    at = open_page("pages/jobs.py", role="scientist")
    next(b for b in at.button if b.label == "Queue diagnostic job").click().run()
    assert "Queued job" in at.success[0].value
    with factory() as s:
        queued = job_queue.list_jobs(s, statuses=("queued",))
    assert len(queued) == 1
    at.run()
    at.button(key=f"cancel-{queued[0].id}").click().run()
    with factory() as s:
        assert job_queue.get(s, queued[0].id).status == "cancelled"
