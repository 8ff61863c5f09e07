"""Real `cli.py worker` processes stopped mid-job: SIGKILL leaves the job to the stale-job reaper, SIGTERM fails it
at once and hands the scheduler lease on. How long reaping takes is bench/worker_reaping.py's figure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.actors import cli_actor
from core.platform import job_queue, leases
from core.platform.database import transaction
from jobs import scheduler
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def start_worker(settings, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url,
           "LEANOPS_QUEUE_POLL_SECONDS": "0.5"}
    return subprocess.Popen([sys.executable, "cli.py", "worker", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(factory, job_id: int, status: str, timeout: float) -> job_queue.JobView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as s:
            job = job_queue.get(s, job_id)
        if job.status == status:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} is {job.status}, not {status}, after {timeout} s")


def reported_progress(factory, job_id: int) -> bool:
    with factory() as s:
        return bool(job_queue.get(s, job_id).stage)


def holds_scheduler_lease(factory, worker: subprocess.Popen) -> bool:
    assert worker.poll() is None, f"the worker exited with {worker.returncode}: {worker.stdout.read()}"
    with factory() as s:
        return f":{worker.pid}:" in (leases.holder(s, name=scheduler.LEASE) or "")


def test_sigkilled_worker_leaves_its_job_failed(factory, settings):
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 120}).id
    first = start_worker(settings)
    try:
        running = wait_for(factory, job_id, "running", timeout=30)
        wait_until(lambda: reported_progress(factory, job_id), timeout=30, every=0.2, what="the job to be under way")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_worker(settings)  # a restarted worker also takes back the scheduler lease
        try:
            # a safety net, not the goal: the stale-job reaper takes ~30 s here (bench/worker_reaping.py)
            failed = wait_for(factory, job_id, "failed", timeout=120)
            assert second.poll() is None, second.stdout.read()
        finally:
            second.terminate()
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
    assert f"worker {running.worker} stopped responding" in failed.error


def test_sigterm_fails_the_running_job_at_once_and_releases_the_lease(factory, settings):
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 120}).id
    worker = start_worker(settings)
    wait_for(factory, job_id, "running", timeout=30)
    worker.terminate()
    assert worker.wait(timeout=20) == 0
    with factory() as s:
        job = job_queue.get(s, job_id)
    assert job.status == "failed" and job.error == "worker shut down during the job"
    again = start_worker(settings)  # the lease was released: a new scheduler starts at once
    try:
        wait_until(lambda: holds_scheduler_lease(factory, again), timeout=30, every=0.2,
                   what="the new worker to take the scheduler lease")
        assert again.poll() is None
    finally:
        again.terminate()
        again.wait(timeout=15)
