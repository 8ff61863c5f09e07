"""One training job run as a worker runs it, in a child process: the runs tests/scale/test_kill_during_training.py
SIGKILLs at chosen instants. The child inherits no MLflow or database connection from the test."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import core.promotion.registration  # noqa: F401 - the training workflow, imported before the job is claimed
from core.settings import get_settings
from db.session import make_engine, make_session_factory
from jobs.runner import run_next


def run_job(db_url: str, home: str, stale_seconds: float, *, stop_once_committed: bool = False,
            stop_once_registered: bool = False) -> None:
    """Claim and run the oldest queued job as a worker would (heartbeats every half second). With
    ``stop_once_committed`` the process stops itself (SIGSTOP) once LeanOps has committed the version, before its
    pending tag is removed: the instant a kill is hardest to hit by watching from outside. With
    ``stop_once_registered`` it stops once MLflow has the version (still pending), before LeanOps records its gates:
    on a loaded machine a watcher polling MLflow may otherwise see the version only after the gates."""
    if stop_once_registered:
        import signal

        from core.platform import mlflow_store

        register = mlflow_store.register

        def register_then_stop(*args: object, **kwargs: object) -> object:
            version = register(*args, **kwargs)  # type: ignore[arg-type]
            os.kill(os.getpid(), signal.SIGSTOP)
            return version

        mlflow_store.register = register_then_stop  # type: ignore[assignment]
    if stop_once_committed:
        import signal

        from core.training import pending

        finish = pending.finish

        def stop_then_finish(*args: object, **kwargs: object) -> None:
            os.kill(os.getpid(), signal.SIGSTOP)
            finish(*args, **kwargs)  # type: ignore[arg-type]

        pending.finish = stop_then_finish  # type: ignore[assignment]
    settings = get_settings(home=Path(home), db_url=db_url, scheduler="off", job_heartbeat_seconds=0.5,
                            job_stale_seconds=stale_seconds, admin_user="admin", admin_password="admin-pass-123")
    engine = make_engine(db_url)
    run_next(make_session_factory(engine), settings, worker=f"{socket.gethostname()}:{os.getpid()}:kill-test")
    engine.dispose()
