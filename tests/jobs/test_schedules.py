"""Schedules: rows mirrored into APScheduler, next run written back, pause/resume, firing."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from core.actors import Actor, cli_actor
from core.errors import InvalidInput, PermissionDenied
from core.platform import job_queue, leases, schedules
from core.platform.database import transaction
from jobs import scheduler


@pytest.fixture
def runtime(settings, factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="nightly", kind="audit.verify", cron="30 3 * * *")
    rt = scheduler.start(settings, factory)
    yield rt
    scheduler.stop()


def next_run(factory, name):
    with factory() as s:
        return next(x for x in schedules.list_schedules(s) if x.name == name).next_run_at


def test_next_run_is_written_back_and_pause_clears_it(runtime, factory):
    scheduler.sync_schedules()
    first = next_run(factory, "nightly")
    assert first is not None and (first.hour, first.minute) == (3, 30)
    with transaction(factory) as s:
        schedules.set_paused(s, actor=cli_actor(), name="nightly", paused=True)
    scheduler.sync_schedules()
    assert next_run(factory, "nightly") is None
    with transaction(factory) as s:
        schedules.set_paused(s, actor=cli_actor(), name="nightly", paused=False)
        schedules.set_cron(s, actor=cli_actor(), name="nightly", cron="15 4 * * *")
    time.sleep(0.01)
    scheduler.sync_schedules()
    assert (next_run(factory, "nightly").hour, next_run(factory, "nightly").minute) == (4, 15)


def test_firing_queues_a_job_as_the_system(runtime, factory):
    scheduler.fire_schedule("nightly")
    with factory() as s:
        queued = job_queue.list_jobs(s, kind="audit.verify")
        row = next(x for x in schedules.list_schedules(s) if x.name == "nightly")
    assert queued[0].created_by == "system:schedule:nightly"
    assert row.last_job_id == queued[0].id


def test_a_second_scheduler_is_refused(runtime, factory):
    with pytest.raises(leases.LeaseHeld, match="exactly one"):
        with transaction(factory) as s:
            leases.acquire(s, name=scheduler.LEASE, holder="other:1:x", ttl=45)


@pytest.mark.parametrize("cron", ["", "* * *", "61 * * * * *", "a b c d e;", "* * * * * *", "99 99 * * *",
                                  "0 0 0 * *", "*/0 * * * *", "5-1 * * * *", "0 0 * 13 *", "0 0 * * 8"])
def test_bad_cron_is_refused(factory, cron):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="x", kind="audit.verify", cron="0 0 * * *")
    with pytest.raises(InvalidInput, match="five fields"):
        with transaction(factory) as s:
            schedules.set_cron(s, actor=cli_actor(), name="x", cron=cron)


@pytest.mark.parametrize(("cron", "field"), [
    ("99 99 * * *", "the minute field '99' is refused: the last value (99) is higher than the maximum value (59)"),
    ("0 24 * * *", "the hour field '24'"),
    ("0 0 32 * *", "the day-of-month field '32'"),
    ("0 0 * 0 *", "the month field '0'"),
    ("0 0 * * funday", "the day-of-week field 'funday'"),
])
def test_a_cron_is_parsed_by_apscheduler_at_save_and_the_refused_field_named(factory, cron, field):
    with pytest.raises(InvalidInput, match=re.escape(f"cron {cron!r}: {field}")):
        with transaction(factory) as s:
            schedules.ensure(s, actor=cli_actor(), name="x", kind="audit.verify", cron=cron)
    with factory() as s:
        assert schedules.list_schedules(s) == []


@pytest.mark.parametrize("cron", ["0 3 * * 7", "0 9 * * 1-5", "*/15 * * * *", "0 0 1 jan-mar sun", "30 2 * * 5-7"])
def test_crontab_crons_the_scheduler_runs_are_accepted(cron):
    """Crontab's 7 (Sunday) and ranges up to it are accepted: APScheduler's from_crontab would refuse them."""
    assert schedules.check_cron(cron) == cron
    assert scheduler.cron_trigger(cron).get_next_fire_time(None, datetime(2026, 11, 30, tzinfo=UTC)) is not None


def test_only_admins_change_schedules(factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="x", kind="audit.verify", cron="0 0 * * *")
    with pytest.raises(PermissionDenied):
        with transaction(factory) as s:
            schedules.set_paused(s, actor=Actor("sam", "scientist"), name="x", paused=True)
