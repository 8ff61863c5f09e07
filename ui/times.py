"""Times as the viewer reads them: in the browser's time zone, with how long ago ("14:03 CET · 2 h ago").

``st.context.timezone`` is the browser's IANA zone (None in AppTest and before the browser said it); the
stored times are UTC (SQLite hands them back without a zone: they are UTC too).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

from ui.components import ago


def viewer_zone() -> ZoneInfo:
    name = st.context.timezone
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def when(ts: datetime | None) -> str:
    """``2026-12-07 15:03 CET · 2 h ago`` in the viewer's zone; ``—`` for no time."""
    if ts is None or pd.isna(ts):
        return "—"
    ts = _aware(pd.Timestamp(ts).to_pydatetime())
    local = ts.astimezone(viewer_zone())
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} · {ago(ts)}"


def localise(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """A copy of ``frame`` with each named time column written by ``when`` (viewer's zone and "ago")."""
    out = frame.copy()
    for name in columns:
        if name in out.columns:
            out[name] = [when(v) for v in out[name]]
    return out
