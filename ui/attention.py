"""The Overview's "needs attention" list: each item says its whole reason and links to the page and object
where to act (the model's version on Registry, the drift check, the failed job on Jobs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import streamlit as st

from ui import queries, resources
from ui.components import badge, plain
from ui.url_state import link

if TYPE_CHECKING:
    from core.platform.job_queue import JobView


@dataclass(frozen=True)
class Reason:
    text: str  # the whole reason, in words
    page: str  # the app_pages file where to act
    link: str  # the link's label
    params: dict[str, str] = field(default_factory=dict)  # the object on that page (?model=…&check=…)


@dataclass(frozen=True)
class Item:
    model: str
    reasons: list[Reason]


@st.cache_data(ttl=15)
def items() -> list[Item]:
    """One item per model that needs attention (``queries.model_health``), with every reason linked."""
    from core.monitoring import checks
    from core.platform import job_queue
    from core.registry import views

    out = []
    since = datetime.now(UTC) - timedelta(hours=24)
    with resources.session_factory()() as session:
        failed = [j for j in job_queue.list_jobs(session, statuses=("failed",), limit=100)
                  if j.finished_at is not None and _aware(j.finished_at) >= since]
        for h in queries.model_health():
            if h.ok:
                continue
            model = h.model
            reasons: list[Reason] = []
            if h.champion == "none yet":
                reasons.append(Reason(f"{model} has no champion: nothing serves its predictions yet",
                                      "app_pages/registry.py", "Open on Registry", {"model": model}))
            elif h.gates != "passed":
                version = int(h.champion.lstrip("v"))
                found = next((v for v in views.list_versions(session, model=model) if v.version == version), None)
                failing = [c.get("name", "") for c in (found.gate_checks if found else [])
                           if c.get("passed") is False]
                said = f"; failing: {', '.join(map(str, failing))}" if failing else ""
                reasons.append(Reason(f"the champion {h.champion}'s gates {h.gates}{said}", "app_pages/registry.py",
                                      f"Open {model} {h.champion} on Registry",
                                      {"model": model, "version": str(version)}))
            if h.drift == "drift":
                latest = checks.latest(session, model=model)
                params = {"model": model} | ({"check": str(latest.id)} if latest else {})
                reasons.append(Reason(f"drift: {h.drift_reason}", "app_pages/drift.py",
                                      f"Open drift check #{latest.id}" if latest else "Open on Drift", params))
            if h.metric_state == "below floor":
                reasons.append(Reason(f"performance below its floor: {h.metric}", "app_pages/drift.py",
                                      "Open live performance", {"model": model}))
            for job in (j for j in failed if (j.params or {}).get("model") == model):
                error = (job.error or "no reason recorded").splitlines()[0]
                reasons.append(Reason(f"job #{job.id} ({job.kind}) failed: {error}", "app_pages/jobs.py",
                                      f"Open job #{job.id}", {"job": str(job.id)}))
            if h.alerts_24h:
                reasons.append(Reason(f"{h.alerts_24h} alert(s) in the last 24 hours (listed under Recent alerts "
                                      "below and on Drift)", "app_pages/drift.py", "Open alerts on Drift",
                                      {"model": model}))
            out.append(Item(model, reasons))
    return out


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def panel() -> None:
    """Each model that needs attention, every reason in full, each with a link to where to act."""
    for item in items():
        with st.container(border=True, key=f"attention-{item.model}"):
            st.markdown(badge("warning", text=f"{plain(item.model)} needs attention"))
            for reason in item.reasons:
                left, right = st.columns([4, 1], vertical_alignment="center")
                left.markdown(plain(reason.text))
                link(right, reason.page, reason.link, reason.params, icon=":material/arrow_outward:")


def job_view(job_id: int) -> JobView | None:
    """One job by id (None when there is none), for a link to a job that is not on the history's page."""
    from core.errors import NotFound
    from core.platform import job_queue

    with resources.session_factory()() as session:
        try:
            return job_queue.get(session, job_id)
        except NotFound:
            return None
