"""A worker process that dies mid-job: how long until its job is failed, and until a new scheduler runs.

The scenarios of tests/jobs/test_worker_process.py, timed (SQLite metadata DB, default heartbeat and
stale-job settings, queue polled every 0.5 s as in the tests):

1. SIGKILL: a ``cli.py worker`` runs a 120 s ``diagnostic.sleep`` job and is killed; a restarted
   worker takes the scheduler lease back and its reaper fails the job once the heartbeat is stale.
   Measured from the kill to the job's ``failed`` row. Goal (the test's former assertion): under 60 s.
2. SIGTERM: the worker fails its running job itself and releases the lease. Measured from the signal
   to the ``failed`` row, and from starting a new worker to it holding the scheduler lease.

    PYTHONPATH=. .venv/bin/python bench/worker_reaping.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 60.0


def wait(check, timeout: float, what: str, every: float = 0.1) -> Any:  # check's first truthy value
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return value


class Workspace:
    def __init__(self, root: Path) -> None:
        from db.session import make_engine, make_session_factory, migrate

        self.home, self.db_url = root / "ws", f"sqlite:///{root / 'leanops.db'}"
        self.home.mkdir(parents=True)
        migrate(self.db_url)
        self.engine = make_engine(self.db_url)
        self.factory = make_session_factory(self.engine)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
            "LEANOPS_HOME": str(self.home), "LEANOPS_DB_URL": self.db_url, "LEANOPS_QUEUE_POLL_SECONDS": "0.5",
            "PYTHONPATH": str(ROOT)}

    def worker(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "cli.py", "worker"], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sleep_job(self) -> int:
        from core.actors import cli_actor
        from core.platform import job_queue
        from core.platform.database import transaction

        with transaction(self.factory) as s:
            return job_queue.enqueue(s, actor=cli_actor(), kind="diagnostic.sleep", params={"seconds": 120}).id

    def job(self, job_id: int) -> Any:  # a JobView
        from core.platform import job_queue

        with self.factory() as s:
            return job_queue.get(s, job_id)

    def under_way(self, job_id: int) -> bool:
        job = self.job(job_id)
        return job.status == "running" and bool(job.stage)

    def failed(self, job_id: int) -> bool:
        return self.job(job_id).status == "failed"

    def holds_lease(self, proc: subprocess.Popen) -> bool:
        from core.platform import leases
        from jobs import scheduler

        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}")
        with self.factory() as s:
            return f":{proc.pid}:" in (leases.holder(s, name=scheduler.LEASE) or "")


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def sigkill_round(ws: Workspace) -> float:
    job_id = ws.sleep_job()
    first = ws.worker()
    second = None
    try:
        wait(lambda: ws.under_way(job_id), 60, "the job to be under way")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = time.monotonic()
        second = ws.worker()
        wait(lambda: ws.failed(job_id), 300, "the reaper to fail the job", every=0.05)
        return time.monotonic() - killed
    finally:
        stop(first, *([second] if second else []))


def sigterm_round(ws: Workspace) -> tuple[float, float]:
    job_id = ws.sleep_job()
    worker = ws.worker()
    again = None
    try:
        wait(lambda: ws.under_way(job_id), 60, "the job to be under way")
        signalled = time.monotonic()
        worker.terminate()
        worker.wait(timeout=30)
        wait(lambda: ws.failed(job_id), 30, "the job to be failed", every=0.05)
        failed = time.monotonic() - signalled
        started = time.monotonic()
        again = ws.worker()
        wait(lambda: ws.holds_lease(again), 60, "the new worker to take the scheduler lease", every=0.05)
        return failed, time.monotonic() - started
    finally:
        stop(worker, *([again] if again else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from core.settings import get_settings

    work = Path(tempfile.mkdtemp(prefix="leanops-bench-reaping-"))
    ws = Workspace(work)
    try:
        defaults = get_settings(home=ws.home, db_url=ws.db_url)
        print(f"heartbeat every {defaults.job_heartbeat_seconds:g} s, stale after {defaults.job_stale_seconds:g} s, "
              "queue polled every 0.5 s")
        kills, terms, leases = [], [], []
        for r in range(args.rounds):
            kills.append(sigkill_round(ws))
            failed, lease = sigterm_round(ws)
            terms.append(failed)
            leases.append(lease)
            print(f"round {r + 1}: SIGKILL -> job failed after {kills[-1]:.1f} s | SIGTERM -> job failed after "
                  f"{terms[-1]:.2f} s, next worker holds the lease {leases[-1]:.2f} s after its start")
        print(f"SIGKILL: job failed after median {statistics.median(kills):.1f} s, worst {max(kills):.1f} s "
              f"(goal < {GOAL_SECONDS:g} s): {'OK' if max(kills) < GOAL_SECONDS else 'TOO SLOW'}")
        print(f"SIGTERM: job failed after median {statistics.median(terms):.2f} s; a new worker holds the scheduler "
              f"lease after median {statistics.median(leases):.2f} s")
    finally:
        ws.engine.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
