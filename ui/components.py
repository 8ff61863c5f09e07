"""Small building blocks shared by pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from core.errors import LeanOpsError
from core.platform.database import transaction
from ui import resources

T = TypeVar("T")
STATUS_ICON = {"queued": "⏳", "running": "🏃", "succeeded": "✅", "failed": "❌", "cancelled": "🚫"}


def act(fn: Callable[[Session], T], *, success: str | None = None) -> T | None:
    """Run one write in its own transaction; show a LeanOpsError as st.error and return None."""
    try:
        with transaction(resources.session_factory()) as session:
            result = fn(session)
    except LeanOpsError as exc:
        st.error(str(exc))
        return None
    st.cache_data.clear()
    if success:
        st.toast(success, icon="✅")
    return result


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "—"
    seconds = (datetime.now(UTC) - ts).total_seconds()
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def job_row(job, who, *, label: str, key: str) -> None:  # a JobView and an Actor
    """One live queue line: progress with its stage, and Cancel for those who may (inside a fragment)."""
    from core.platform import job_queue

    left, right = st.columns([5, 1])
    left.progress(job.progress, text=f"{STATUS_ICON[job.status]} {label} · by {job.created_by} {ago(job.created_at)}")
    if job.cancel_requested:
        right.caption("stopping…")
    elif who.at_least("scientist") and right.button("Cancel", key=f"{key}-{job.id}"):
        act(lambda s: job_queue.cancel(s, actor=who, job_id=job.id), success=f"Job {job.id}: cancel requested")
        st.rerun(scope="fragment")
