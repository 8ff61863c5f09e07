"""Jobs page: queue, history with the failure reason, schedules with pause/resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.actors import cli_actor
from core.platform import job_queue, schedules
from core.platform.database import transaction
from db.models import Job, utcnow
from jobs.scheduler import cron_trigger
from ui.cron_words import cron_words


def test_reaped_job_shows_its_reason(open_page, factory):
    with transaction(factory) as s:
        job = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 5})
        job_queue.claim(s, worker="host:1:dead")
        s.get(Job, job.id).heartbeat_at = utcnow() - timedelta(minutes=5)
    with transaction(factory) as s:
        job_queue.reap_stale(s, stale_after=30)
    at = open_page("app_pages/jobs.py", role="viewer")
    assert not at.exception
    history = at.dataframe[0].value
    assert "stopped responding" in history.loc[history["job"] == job.id, "error"].iloc[0]
    assert not [b for b in at.button if b.label == "Queue diagnostic job"], "viewers cannot queue jobs"


def test_admin_pauses_and_resumes_a_schedule(open_page, factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="nightly", kind="audit.verify", cron="0 3 * * *")
    at = open_page("app_pages/jobs.py", role="admin")
    at.button(key="sched-nightly").click().run()
    with factory() as s:
        assert next(x for x in schedules.list_schedules(s) if x.name == "nightly").paused
    assert at.button(key="sched-nightly").label == "Resume"


def test_scientist_queues_and_cancels_a_diagnostic_job(open_page, factory):
    at = open_page("app_pages/jobs.py", role="scientist")
    next(b for b in at.button if b.label == "Queue diagnostic job").click().run()
    assert "Queued job" in at.success[0].value
    with factory() as s:
        queued = job_queue.list_jobs(s, statuses=("queued",))
    assert len(queued) == 1
    at.run()
    at.button(key=f"cancel-{queued[0].id}").click().run()
    with factory() as s:
        assert job_queue.get(s, queued[0].id).status == "cancelled"


@pytest.mark.parametrize(("cron", "words"), [
    ("0 6 * * *", "every day at 06:00 UTC"),
    ("*/15 * * * *", "every 15 minutes"),
    ("5 * * * *", "every hour at minute 05"),
    ("0 */6 * * *", "every 6 hours at minute 00"),
    ("0 3 * * mon-fri", "every weekday (Monday to Friday) at 03:00 UTC"),
    ("0 4 * * sat,sun", "every Saturday and Sunday at 04:00 UTC"),
    ("0 4 1 * *", "on day 1 of every month at 04:00 UTC"),
    ("0 7 * * 0", "every Sunday at 07:00 UTC"),  # crontab: 0 is Sunday (APScheduler's own 0 is Monday)
    ("0 7 * * 1-5", "every weekday (Monday to Friday) at 07:00 UTC"),
    ("0 1,13 * * *", "0 1,13 * * *"),  # an uncommon shape stays as written
    ("0 0 * 1 *", "0 0 * 1 *"),
])
def test_cron_in_plain_words(cron: str, words: str) -> None:
    assert cron_words(cron) == words


def test_cron_words_say_what_the_scheduler_does() -> None:
    """The weekday in words is the one the scheduler's trigger fires on, and crontab's meaning."""
    crontab = {"0": "Sunday", "1": "Monday", "6": "Saturday", "7": "Sunday", "fri": "Friday"}
    for field, day in crontab.items():
        cron = f"30 2 * * {field}"
        fire = cron_trigger(cron).get_next_fire_time(None, datetime(2026, 11, 30, tzinfo=UTC))
        assert f"{fire:%A}" == day
        assert cron_words(cron) == f"every {day} at 02:30 UTC"


@pytest.mark.parametrize(("field", "days"), [
    ("1-5", "mon,tue,wed,thu,fri"), ("0", "sun"), ("7", "sun"), ("5-7", "sun,fri,sat"), ("*/2", "sun,tue,thu,sat"),
    ("sat,sun", "sun,sat"), ("mon-fri", "mon,tue,wed,thu,fri"), ("*", "*"),
])
def test_crontab_day_numbers_keep_their_meaning_for_the_scheduler(field: str, days: str) -> None:
    """APScheduler 3 counts 0 = Monday even in from_crontab: "1-5" there fires Tuesday to Saturday."""
    assert schedules.crontab_days(field) == days
    sunday = datetime(2026, 11, 29, tzinfo=UTC)
    week = [cron_trigger(f"0 9 * * {field}").get_next_fire_time(None, sunday + timedelta(days=i))
            for i in range(7)]
    assert {f"{w:%a}".lower() for w in week} == (set(days.split(",")) if days != "*" else
                                                  {"sun", "mon", "tue", "wed", "thu", "fri", "sat"})


def test_schedules_read_in_words_and_history_refreshes_when_a_job_finishes(open_page, factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="morning", kind="audit.verify", cron="0 6 * * *")
        job = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 1})
    at = open_page("app_pages/jobs.py", role="admin")
    assert any("every day at 06\\:00 UTC" in m.value for m in at.markdown)
    assert not [d for d in at.dataframe if "job" in d.value.columns], "nothing has finished yet"
    with transaction(factory) as s:
        job_queue.claim(s, worker="host:1:test")
        job_queue.finish(s, job_id=job.id, status="succeeded")
    at.run()  # the queue fragment's next tick sees the job gone and reruns the page
    history = next(d.value for d in at.dataframe if "job" in d.value.columns)
    assert history["job"].tolist() == [job.id]
    at.selectbox(key="job-log").select(job.id).run()
    with transaction(factory) as s:  # another job finishes: the picker keeps its selection
        other = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 1})
        job_queue.claim(s, worker="host:1:test")
        job_queue.finish(s, job_id=other.id, status="succeeded")
    at.run()
    assert next(d.value for d in at.dataframe if "job" in d.value.columns)["job"].tolist() == [other.id, job.id]
    assert at.selectbox(key="job-log").value == job.id
