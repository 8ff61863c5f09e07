"""A training job stopped at 20+ instants, then killed, with no worker left: MLflow never shows a version
without its gates unless it carries the ``leanops.pending`` tag, and once the API alone is running every
pending version is gone within 60 s with only the dashboard running, each deletion audited (issue 29 item 5).

Training a version takes seconds, so one run gives every instant: the test freezes the job's process
(SIGSTOP: it makes no progress, its heartbeat stops, its open transaction stays uncommitted, exactly what
a kill at that point leaves for others to see), checks MLflow against LeanOps' DB, and lets it go on
(SIGCONT); every 0.2 s until the registration starts, then every 20 ms through it, then SIGKILL
once LeanOps has committed the version, before its pending tag is removed (the job stops itself there). A second
job is SIGKILLed as soon as MLflow lists its new, still pending version (it stops itself there, before its gates).
Then the real dashboard (``streamlit run dashboard.py``, scheduler off, no browser) starts and nothing else: its
housekeeping reaps both jobs, deletes the second job's version (audited) and finishes the first's.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from core.platform import processes
from core.platform.database import transaction
from core.training import pending, pipeline
from core.training.spec import parse_spec
from db.models import AuditEvent, GateEvaluation, Job, PendingRegistration
from tests.support import kill_points
from tests.support.net import free_port
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, add_dataset, small_churn
from tests.support.worker import drain

ROOT = Path(__file__).resolve().parents[2]
STALE = 2.0  # seconds without a heartbeat before a job counts as stopped
INSTANTS = 20


def _versions(workspace, *, wait: float = 30.0) -> dict[int, dict[str, str]]:
    """MLflow's versions of churn and their tags (a read that waits at most ``wait`` s for a writer's lock)."""
    from mlflow import MlflowClient

    uri = f"{workspace.mlflow_uri}?timeout={wait:g}"
    mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {int(v.version): dict(v.tags) for v in mlflow.search_model_versions("name = 'churn'")}


def _frozen_versions(workspace, child) -> dict[int, dict[str, str]]:
    """The versions, read while ``child`` is stopped: frozen inside a write of MLflow's SQLite file it holds
    the lock, so it is let go for a moment (the instant moves on a little) until the read gets through."""
    from mlflow.exceptions import MlflowException

    for _ in range(100):
        try:
            return _versions(workspace, wait=0.2)
        except MlflowException as exc:
            if "locked" not in str(exc):
                raise
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.02)
        os.kill(child.pid, signal.SIGSTOP)
    raise AssertionError("MLflow's database stayed locked by the stopped job")


def _gated(factory) -> set[int]:
    with factory() as s:
        return set(s.scalars(select(GateEvaluation.version).where(GateEvaluation.model == "churn")))


def _state(factory, job_id: int) -> str | None:
    with factory() as s:
        return s.scalar(select(PendingRegistration.state).where(PendingRegistration.job_id == job_id))


def _start(ctx, workspace, factory, *, stop_once_committed: bool = False, stop_once_registered: bool = False
           ) -> tuple[multiprocessing.process.BaseProcess, int]:
    """A training job, run in a fresh child process as a worker runs it (follow-ups queued before run here)."""
    drain(factory, workspace)
    with transaction(factory) as s:
        job_id = pipeline.launch(s, actor=SCIENTIST, spec=parse_spec(
            {"dataset": "churn", "target": "churn", "params": {"n_estimators": 10}})).id
    child = ctx.Process(target=kill_points.run_job, args=(workspace.db_url, str(workspace.home), STALE),
                        kwargs={"stop_once_committed": stop_once_committed,
                                "stop_once_registered": stop_once_registered})
    processes.start(child)  # under xdist, AppTest may have left a page script as __main__
    return child, job_id


def _bare(workspace, factory, child=None) -> list[int]:
    """Versions MLflow shows with neither gates in LeanOps nor the pending tag. With ``child`` stopped both
    reads see one instant (MLflow's last: the child may have moved on while its lock was waited out);
    otherwise LeanOps' DB is read first, as the tag goes only after the gates are committed."""
    if child is None:
        gated = _gated(factory)
        versions = _versions(workspace)
    else:
        versions = _frozen_versions(workspace, child)
        gated = _gated(factory)
    return [v for v, tags in versions.items() if v not in gated and pending.TAG not in tags]


def _up(url: str, server: subprocess.Popen) -> float:
    """When ``url`` first answered 200 (monotonic clock); the process's start-up (imports) is not the sweep's."""
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not answer {url}")


def test_no_version_without_gates_at_any_instant_and_the_dashboard_alone_takes_pending_ones_back(workspace, factory):
    add_dataset(factory, workspace, small_churn(300))
    ctx = multiprocessing.get_context("spawn")  # nothing inherited from this test process (a few seconds each)

    # -- one run, frozen and checked at every instant, killed once LeanOps has committed its version ---------
    child, first_job = _start(ctx, workspace, factory, stop_once_committed=True)
    instants, registering, next_stop = [], 0, time.monotonic() + 0.2
    try:
        while child.is_alive():
            state = _state(factory, first_job)  # looked at every 10 ms, frozen every 0.2 s (20 ms while registering)
            if (state or "-") == (instants or ["-"])[-1] and time.monotonic() < next_stop:  # frozen at each change
                time.sleep(0.01)
                continue
            try:
                os.kill(child.pid, signal.SIGSTOP)
            except ProcessLookupError:  # it ended between two looks
                break
            state = _state(factory, first_job)
            registering += state == "registering"
            bare = _bare(workspace, factory, child)
            instants.append(state or "-")
            assert not bare, f"at instant {len(instants)} ({state}): version(s) {bare} without gates or pending tag"
            if state == "committed":
                os.kill(child.pid, signal.SIGKILL)
                break
            os.kill(child.pid, signal.SIGCONT)
            next_stop = time.monotonic() + (0.02 if state == "registering" else 0.2)
    finally:
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=60)
    if instants[-1:] != ["committed"]:
        with factory() as s:
            job = s.get(Job, first_job)
            raise AssertionError(f"the job ended before it was killed (exit code {child.exitcode}, job "
                                 f"{job.status if job else None}: {job.error if job else None}): {instants}")
    assert len(instants) >= INSTANTS and registering >= 2, (len(instants), registering, instants)
    assert _versions(workspace), "the first job registered its version"

    # -- a second run, killed as soon as MLflow lists its version (still pending) ----------------------------
    before = set(_versions(workspace))
    child, second_job = _start(ctx, workspace, factory, stop_once_registered=True)
    try:
        deadline = time.monotonic() + 600
        while not (set(_versions(workspace)) - before):
            assert child.is_alive(), "the second job ended before registering"
            assert time.monotonic() < deadline, "no version was registered"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(timeout=60)
    left = set(_versions(workspace)) - before
    assert not _bare(workspace, factory)
    pending_left = {v for v in left if pending.TAG in _versions(workspace)[v] and v not in _gated(factory)}

    # -- only the dashboard runs (nobody opens it): within 60 s nothing is pending, every version has its gates
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(workspace.home), "LEANOPS_DB_URL": workspace.db_url, "LEANOPS_SCHEDULER": "off",
        "LEANOPS_JOB_STALE_SECONDS": str(STALE), "MLFLOW_DISABLE_TELEMETRY": "true"}
    log, port = workspace.home / "dashboard.log", free_port()
    with log.open("wb") as sink:
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless",
                                   "true", "--server.port", str(port)], cwd=ROOT, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT)
    try:
        started = _up(f"http://127.0.0.1:{port}/_stcore/health", server)  # the 60 s count from its first answer
        while True:
            versions = _versions(workspace)
            with factory() as s:
                rows = s.scalar(select(func.count()).select_from(PendingRegistration))
                running = s.scalar(select(func.count()).select_from(Job).where(Job.status == "running"))
            if not rows and not running and not any(pending.TAG in tags for tags in versions.values()):
                break
            assert server.poll() is None, "the dashboard exited"
            assert time.monotonic() - started < 60, (f"after 60 s: {rows} pending, {running} running, {versions}; "
                                                     f"the dashboard's log:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        took = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert set(versions) <= _gated(factory), "every version left in MLflow has its gates"
    with factory() as s:
        deleted = [(e.actor, e.details["version"], e.details["job"]) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action == "model.version_deleted"))]
        jobs = {j.id: j.status for j in s.scalars(select(Job).where(Job.id.in_((first_job, second_job))))}
    assert pending_left and not pending_left & set(versions), "the second job's pending version is gone"
    assert {(pending.REAPER, v, second_job) for v in pending_left} <= set(deleted), deleted
    assert jobs == {first_job: "failed", second_job: "failed"}, jobs
    print(f"\n{len(instants)} instants ({registering} while registering); "
          f"pending versions taken back {took:.1f} s after the dashboard answered")
