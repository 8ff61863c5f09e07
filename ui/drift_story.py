"""The Drift page's one story: what the verdict's settings mean in false alarms, and why LeanOps' verdict
and Evidently's headline can differ (said in one line above the report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from core.monitoring import significance
from core.monitoring.checks import CheckView
from ui.components import plain


@st.cache_data(ttl=300)
def checks_per_month(cron: str | None) -> float:
    """How often a cron schedule fires in an average month (0 when off or unreadable)."""
    if not cron:
        return 0.0
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError:
        return 0.0
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=significance.DAYS_PER_MONTH)
    count, at = 0, trigger.get_next_fire_time(None, start)
    while at is not None and at < end and count < 50_000:
        count += 1
        at = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return float(count)


def false_alarms(rules: Any, latest: CheckView | None) -> str:
    """One sentence: the expected false alarms per month of the scheduled check at the current settings."""
    drift = rules.drift
    per_month = checks_per_month(drift.schedule)
    if not per_month:
        return "No scheduled drift check (drift.schedule is off), so no false alarms from schedules."
    rows = latest.current_rows if latest is not None else drift.min_rows
    columns = len(latest.columns) if latest is not None else 10
    bound = significance.false_alarms_per_month(
        drift, checks_per_month=per_month, rows=rows, large_sample_rows=drift.large_sample_rows, columns=columns,
        outputs_decide=drift.prediction_drift)
    how = (f"decided by distances (more than {drift.large_sample_rows:,} rows, as the latest window had)"
           if rows > drift.large_sample_rows else
           f"decided by tests at p < {drift.p_value:g}"
           + (" corrected across columns (Benjamini-Hochberg)" if drift.correction == "benjamini-hochberg" else
              f" without correction across {columns} columns")
           + f", floors {drift.floor_wasserstein:g} SD / {drift.floor_jensenshannon:g} JS")
    return (f"Expected false alarms on unchanged data: at most **{bound:.1f} per month** "
            f"({per_month:.0f} scheduled checks a month, {how}).")


def why_they_differ(check: CheckView) -> str:
    """One line above the Evidently report: same tests, different headline rule."""
    verdict = "drift" if check.drift_detected else "stable"
    fired = [r.get("rule", "") for r in check.verdict.get("reasons", [])]
    because = {"prediction_drift": "the model's outputs drifted", "important_feature": "an important column drifted",
               "importance_share": "the drifted columns carry enough of the model's importance",
               "drift_share": "enough columns drifted"}
    said = ", ".join(because.get(r, r) for r in fired) or "no rule fired"
    tested = sum(1 for c in check.columns.values() if c.get("method") in significance.FLOORS)
    return (f"Why the two can differ: LeanOps says **{verdict}** ({plain(said)}); Evidently runs the same test and "
            f"threshold per column on a sample, but its headline only counts the share of drifted columns "
            f"(at least {check.threshold:.0%}), without the correction across the {tested} tested columns, the "
            "effect floors or the model's importance.")


def held_back(check: CheckView) -> None:
    """Columns a test flagged on its own that do not count (the correction across columns or the effect floor)."""
    notes = [(name, col["note"]) for name, col in check.columns.items()
             if col.get("note") and col.get("method") in significance.FLOORS]
    for name, note in notes:
        st.caption(f"{plain(name)}: {plain(note)}")


REPORT_MIN_WIDTH = 1060  # px: below this Evidently's layout (fixed-width tables and tiles) is cut off on the right
_FIT = ("<script>(function(){function fit(){var w=window.innerWidth;document.documentElement.style.zoom="
        f"w<{REPORT_MIN_WIDTH}?String(w/{REPORT_MIN_WIDTH}):'1';}}fit();window.addEventListener('resize',fit);}})();"
        "</script>")


def fit_width(report_html: str) -> str:
    """The report scaled down to its frame when the frame is narrower than Evidently's layout, so nothing
    is cut off on the right (a script in the report's own sandboxed frame; it reads only the frame's width)."""
    at = report_html.find("</head>")
    return report_html[:at] + _FIT + report_html[at:] if at >= 0 else _FIT + report_html
