"""Process-wide resources of the dashboard (st.cache_resource lives only here)."""

from __future__ import annotations

import logging
import threading

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings

log = logging.getLogger("leanops.ui")
_SCHEDULER_LOCK = threading.Lock()


@st.cache_resource
def settings() -> Settings:
    return get_settings()


@st.cache_resource
def session_factory() -> sessionmaker[Session]:
    """The engine of this server process, created once the workspace is initialised (migrated)."""
    return open_workspace(settings())


def open_workspace(s: Settings) -> sessionmaker[Session]:
    """Initialise (migrate) the workspace and make an engine for it (uncached: also the server's lifespan's)."""
    from core.workspace.bootstrap import init_workspace
    from db.session import make_engine, make_session_factory

    factory = make_session_factory(make_engine(s.db_url))
    # The server's output usually ends up in a log file: it never generates the admin's password.
    init_workspace(factory, s, demo=False, generate_admin=False)
    return factory


@st.cache_resource
def scheduler() -> str:
    """Start this process's one embedded scheduler; returns a status line for the sidebar."""
    s = settings()
    # Said in a user's words: where jobs run, not a process id nobody can act on.
    if s.scheduler != "embedded":
        from jobs import housekeeping

        housekeeping.start(session_factory(), s)  # no worker here: still reap stopped jobs and pending versions
        return {"external": "scheduler: external (a separate worker runs jobs and schedules)",
                "off": "scheduler: off (jobs wait until a worker runs)"}.get(s.scheduler, f"scheduler: {s.scheduler}")
    from core.platform.leases import LeaseHeld
    from jobs import scheduler as jobs_scheduler

    with _SCHEDULER_LOCK:
        try:
            jobs_scheduler.start(s, session_factory())
        except LeaseHeld as exc:
            log.warning("embedded scheduler not started: %s", exc)
            jobs_scheduler.start(s, session_factory(), run_schedules=False)
            return "scheduler: running in this dashboard (schedules: in another process)"
    return "scheduler: running in this dashboard"
