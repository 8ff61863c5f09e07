"""The sweep every process that opens the workspace runs, not only a worker: the dashboard, the API and the
CLI reap jobs whose worker stopped (with each kind's clean-up, ``runner.reap``) and take back the model
versions such a job left pending in MLflow (``core.training.pending``), so a crash is tidied even when no
worker is left. Reaping is safe from many processes at once: only one wins each stale job.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings

log = logging.getLogger("leanops.housekeeping")

_LOCK = threading.Lock()
_STARTED: dict[str, tuple[threading.Event, threading.Thread]] = {}


def sweep_once(factory: sessionmaker[Session], settings: Settings) -> None:
    """One pass: stale jobs failed and cleaned up, pending versions of stopped jobs taken back. Never raises."""
    from jobs.runner import reap

    try:
        reap(factory, settings)  # its pass ends with the sweep of pending versions
    except Exception:  # noqa: BLE001 - a DB that is down now is retried next pass
        log.warning("housekeeping pass failed", exc_info=True)


def every(settings: Settings) -> float:
    """Seconds between passes: often enough that a stopped job is reaped soon after it goes stale."""
    return max(1.0, min(10.0, settings.job_stale_seconds / 3))


def start(factory: sessionmaker[Session], settings: Settings) -> threading.Event:
    """Run ``sweep_once`` now and then every ``every(settings)`` seconds in a daemon thread (once per process
    and database); set the returned event to stop it."""
    with _LOCK:
        running = _STARTED.get(settings.db_url)
        if running is not None and not running[0].is_set():
            return running[0]
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                sweep_once(factory, settings)
                stop.wait(every(settings))

        thread = threading.Thread(target=loop, name="leanops-housekeeping", daemon=True)
        _STARTED[settings.db_url] = (stop, thread)
    thread.start()
    return stop


def stop_all(timeout: float = 30.0) -> None:
    """Stop every sweep this process started and wait for their passes to end. For a process that keeps going
    after the databases it swept are gone (a test session); one that exits needs nothing."""
    with _LOCK:
        running = list(_STARTED.values())
        _STARTED.clear()
    for stop, _ in running:
        stop.set()
    for _, thread in running:
        thread.join(timeout)
