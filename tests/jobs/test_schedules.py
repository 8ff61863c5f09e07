"""Schedules: rows mirrored into APScheduler, next run written back, pause/resume, firing."""

from __future__ import annotations

import time

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


@pytest.mark.parametrize("cron", ["", "* * *", "61 * * * * *", "a b c d e;", "* * * * * *"])
def test_bad_cron_is_refused(factory, cron):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="x", kind="audit.verify", cron="0 0 * * *")
    with pytest.raises(InvalidInput, match="five fields"):
        with transaction(factory) as s:
            schedules.set_cron(s, actor=cli_actor(), name="x", cron=cron)


def test_only_admins_change_schedules(factory):
    with transaction(factory) as s:
        schedules.ensure(s, actor=cli_actor(), name="x", kind="audit.verify", cron="0 0 * * *")
    with pytest.raises(PermissionDenied):
        with transaction(factory) as s:
            schedules.set_paused(s, actor=Actor("sam", "scientist"), name="x", paused=True)
