"""Cached read queries for pages: DataFrames and frozen dataclasses, never ORM objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from core import audit
from core.accounts import auth
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
        now = datetime.now(UTC)
        columns = ["id", "name", "starts with", "role", "owner", "owner role", "status", "last used", "expires",
                   "created by", "created", "revoked"]
        return pd.DataFrame([{"id": t.id, "name": t.name, "starts with": t.prefix + "…", "role": t.role,
                              "owner": t.owner or "(none)", "owner role": t.owner_role, "status": t.status(now),
                              "last used": t.last_used_at, "expires": t.expires_at,
                              "created by": t.created_by, "created": t.created_at,
                              "revoked": t.revoked_at} for t in auth.list_tokens(session)], columns=columns)


@st.cache_data(ttl=5)
def audit_page(where: audit.EventFilter, before_seq: int | None, reader: Actor, limit: int = 50) -> pd.DataFrame:
    with _session() as session:
        rows = audit.search(session, reader=reader, where=where, limit=limit, before_seq=before_seq)
        return pd.DataFrame([{"#": e.seq, "time": e.ts, "actor": e.actor, "action": e.action, "subject": e.subject,
                              "details": json.dumps(e.details, sort_keys=True)} for e in rows],  # whole: the page cuts
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

@st.cache_data(ttl=10)
def models() -> list:
    from core.registry import views

    with _session() as session:
        return views.list_models(session)


@st.cache_data(ttl=10)
def model_versions(model: str) -> list:
    from core.registry import views

    with _session() as session:
        return views.list_versions(session, model=model)


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

    return resources.settings().policies.rules_for(model).approval.required


# -- training: what a model name is bound to (core.training.integrity) ---------------------------

@st.cache_data(ttl=10)
def model_binding(model: str):  # -> integrity.Binding | None (imported lazily: pages start fast)
    from core.training import integrity

    with _session() as session:
        return integrity.binding(session, model=model)


@st.cache_data(ttl=10)
def schema_changes(model: str, ref: str, target: str, exclude: tuple[str, ...]) -> list[str]:
    from core.training import integrity

    with _session() as session:
        return integrity.schema_changes_for(session, model=model, ref=ref, target=target, exclude=exclude)


# -- the Overview's first question: is production OK? ----------------------------------------------

@dataclass(frozen=True)
class ModelHealth:
    """One row of the Overview: a model in production at a glance, every state in words."""

    model: str
    champion: str  # "v3" or "none yet"
    gates: str  # passed | failed | not evaluated (the champion's latest gate evaluation)
    drift: str  # drift | no drift | not checked
    drift_reason: str
    metric: str  # "live f1 0.812 (floor >= 0.7)", "estimated f1 0.84 …" or why there is none
    metric_state: str  # ok | below floor | not enough labels | no champion
    last_trained: datetime | None
    alerts_24h: int

    @property
    def ok(self) -> bool:
        return (self.champion != "none yet" and self.gates == "passed" and self.drift != "drift"
                and self.metric_state not in ("below floor",) and self.alerts_24h == 0)


@st.cache_data(ttl=15)
def model_health() -> list[ModelHealth]:
    from datetime import timedelta

    from core.alerts import notify
    from core.monitoring import checks, performance
    from core.registry import views

    settings = resources.settings()
    since = datetime.now(UTC) - timedelta(hours=24)
    out = []
    with _session() as session:
        for m in views.list_models(session):
            rules = settings.policies.rules_for(m.name)
            gates, metric, state = "not evaluated", "no champion to measure", "no champion"
            if m.champion is not None:
                version = next((v for v in views.list_versions(session, model=m.name)
                                if v.version == m.champion), None)
                gates = _verdict(version.gates_passed if version else None)
                metric, state = _live_metric(session, performance.evaluate(
                    session, model=m.name, version=m.champion, rules=rules, store=settings.data_store), rules)
            latest = checks.latest(session, model=m.name)
            if latest is None:
                drift, reason = "not checked", "no drift check yet"
            else:
                drift = "drift" if latest.verdict.get("drifted", latest.drift_detected) else "no drift"
                said = [r.get("text", "") for r in latest.verdict.get("reasons", []) if r.get("text")]
                reason = "; ".join(said) if drift == "drift" and said else checks.headline(latest)
                reason += f" (checked v{latest.version}, {latest.ts:%Y-%m-%d %H:%M} UTC)"
                if state == "not enough labels" and (estimate := _estimated(latest, rules)):
                    metric = estimate
            alerts = sum(1 for a in notify.recent(session, limit=200, model=m.name)  # warnings and worse
                         if a.severity != "info" and a.ts.replace(tzinfo=a.ts.tzinfo or UTC) >= since)
            out.append(ModelHealth(model=m.name, champion=f"v{m.champion}" if m.champion else "none yet",
                                   gates=gates, drift=drift, drift_reason=reason, metric=metric, metric_state=state,
                                   last_trained=m.last_trained, alerts_24h=alerts))
    return out


def _verdict(passed: bool | None) -> str:
    return "not evaluated" if passed is None else ("passed" if passed else "failed")


def _live_metric(session: Session, verdict, rules) -> tuple[str, str]:  # a performance.Verdict, a ModelPolicy
    from core import policy

    name = policy.PRIMARY.get(verdict.task, "")
    floor = rules.performance.floor.get(verdict.task, {}).get(name)
    against = f" (floor {floor})" if floor else ""
    if verdict.status == "insufficient":
        return (f"{verdict.labels} of {verdict.min_labels} labels needed for a live {name}", "not enough labels")
    value = verdict.metrics.get(name)
    shown = "—" if value is None else f"{value:.3f}"
    return (f"live {name} {shown}{against} over {verdict.labels} labels",
            "ok" if verdict.status == "ok" else "below floor")


def _estimated(check, rules) -> str | None:  # a CheckView: its label-free estimate of the primary metric
    from core import policy

    for name, est in check.estimated_performance.items():
        if name in (policy.PRIMARY["classification"], policy.PRIMARY["regression"], "mae"):
            floor = next((rule.get(name) for rule in rules.performance.floor.values() if name in rule), None)
            return f"estimated {name} {est['value']:.3f}" + (f" (floor {floor})" if floor else "") + " without labels"
    return None
