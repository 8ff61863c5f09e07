"""Cached read queries for pages: DataFrames and frozen dataclasses, never ORM objects."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from core import audit, auth
from core.actors import Actor
from core.platform import job_queue, schedules
from ui import resources


def _session() -> Session:
    return resources.session_factory()()


@dataclass(frozen=True)
class Counts:
    users: int
    jobs: dict[str, int]
    audit_events: int


@st.cache_data(ttl=5)
def overview_counts() -> Counts:
    with _session() as session:
        return Counts(users=auth.count_users(session), jobs=job_queue.counts(session),
                      audit_events=audit.count(session))


@st.cache_data(ttl=5)
def recent_events(limit: int = 15) -> pd.DataFrame:
    with _session() as session:
        rows = audit.recent(session, limit=limit)
        return pd.DataFrame([{"#": e.seq, "time": e.ts, "actor": e.actor, "action": e.action,
                              "subject": e.subject} for e in rows],
                            columns=["#", "time", "actor", "action", "subject"])


def job_list(statuses: tuple[str, ...] | None = None, limit: int = 50, kind: str | None = None,
             offset: int = 0) -> list[job_queue.JobView]:
    """Not cached: the Jobs page shows live progress."""
    with _session() as session:
        return job_queue.list_jobs(session, statuses=statuses, limit=limit, kind=kind, offset=offset)


@st.cache_data(ttl=5)
def schedule_list() -> list[schedules.ScheduleView]:
    with _session() as session:
        return schedules.list_schedules(session)


@st.cache_data(ttl=30)
def users() -> pd.DataFrame:
    with _session() as session:
        return pd.DataFrame([{"username": u.username, "role": u.role, "active": u.active,
                              "last login": u.last_login_at, "created": u.created_at, "created by": u.created_by}
                             for u in auth.list_users(session)])


@st.cache_data(ttl=30)
def tokens() -> pd.DataFrame:
    with _session() as session:
        return pd.DataFrame([{"id": t.id, "name": t.name, "starts with": t.prefix + "…", "role": t.role,
                              "created by": t.created_by, "created": t.created_at,
                              "revoked": t.revoked_at} for t in auth.list_tokens(session)],
                            columns=["id", "name", "starts with", "role", "created by", "created", "revoked"])


@st.cache_data(ttl=5)
def audit_page(where: audit.EventFilter, before_seq: int | None, reader: Actor, limit: int = 50) -> pd.DataFrame:
    with _session() as session:
        rows = audit.search(session, reader=reader, where=where, limit=limit, before_seq=before_seq)
        return pd.DataFrame([{"#": e.seq, "time": e.ts, "actor": e.actor, "action": e.action, "subject": e.subject,
                              "details": json.dumps(e.details, sort_keys=True)[:500]} for e in rows],
                            columns=["#", "time", "actor", "action", "subject", "details"])


@st.cache_data(ttl=5)
def audit_count(where: audit.EventFilter) -> int:
    with _session() as session:
        return audit.count_matching(session, where=where)


@st.cache_data(ttl=60)
def audit_actions() -> list[str]:
    with _session() as session:
        return audit.actions(session)


# -- registry --------------------------------------------------------------------------------------

def _registry_uri() -> str:
    return resources.settings().mlflow_uri


@st.cache_data(ttl=10)
def models() -> list:
    from core.registry import views

    with _session() as session:
        return views.list_models(session, mlflow_uri=_registry_uri())


@st.cache_data(ttl=10)
def model_versions(model: str) -> list:
    from core.registry import views

    with _session() as session:
        return views.list_versions(session, mlflow_uri=_registry_uri(), model=model)


@st.cache_data(ttl=10)
def champion_periods(model: str) -> list:
    from core.registry import views

    with _session() as session:
        return views.champion_periods(session, model=model)


@st.cache_data(ttl=10)
def pending_requests(model: str) -> pd.DataFrame:
    from core.promotion import approvals

    with _session() as session:
        return pd.DataFrame([{"request": r.id, "asks to": ("roll back from" if approvals.kind_of(r) == "rollback"
                                                           else "promote") + f" v{r.version}",
                              "version": r.version, "requested by": r.requested_by, "reason": r.reason,
                              "since": r.created_at}
                             for r in approvals.pending_requests(session, model=model)],
                            columns=["request", "asks to", "version", "requested by", "reason", "since"])


@st.cache_data(ttl=10)
def policy_needs_approval(model: str) -> bool:
    from core import policy

    return policy.rules_for(resources.settings().home, model).approval.required
