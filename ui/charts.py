"""Chart conventions shared by every page: one colour per meaning, axes that fit one or few points.

Reference and current data keep their colours on every chart and every render (Plotly's default cycle
assigns colours by trace order, so they swapped when a trace was missing); red is kept for "bad"
(drifted, failed, a floor), never for a data series. Time axes never zoom to a sub-second span because
the data happens to be new, and versions are categories ("v1", "v2"), not a number line with v1.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import plotly.graph_objects as go

from core.formats import number

REFERENCE = "#1f77b4"  # blue: the training data, the baseline
CURRENT = "#ff7f0e"  # orange: the data being judged now
SERIES_COLOURS = {"reference": REFERENCE, "current": CURRENT}
GOOD, BAD, NEUTRAL = "#2ca02c", "#d62728", "#7f7f7f"
ESTIMATE = "#9467bd"  # purple: a label-free estimate (realised metrics are REFERENCE blue)
# Streamlit's chart theme starts its colour cycle with red, which reads as an alarm: series that are not
# a verdict (versions of a model) take these instead, in version order.
SERIES = ["#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]


def series_colour(i: int) -> str:
    """The ``i``-th colour of a neutral series palette (no red, no green: those are verdicts)."""
    return SERIES[i % len(SERIES)]
MIN_TIME_SPAN = timedelta(hours=1)


def time_range(times: Sequence[datetime], *, end: datetime | None = None,
               min_span: timedelta = MIN_TIME_SPAN) -> list[datetime] | None:
    """An x range covering ``times`` (and ``end``) that is at least ``min_span`` wide, with a little margin.

    A timeline whose only period started 0.7 s ago otherwise fills the chart with milliseconds.
    """
    points = [t for t in times if t is not None] + ([end] if end is not None else [])
    if not points:
        return None
    first, last = min(points), max(points)
    span = max(last - first, min_span)
    first = min(first, last - span)
    pad = span * 0.03
    return [first - pad, last + pad]


def fit_time_axis(fig: go.Figure, times: Sequence[datetime], *, end: datetime | None = None,
                  min_span: timedelta = MIN_TIME_SPAN) -> go.Figure:
    """Set ``fig``'s x axis to ``time_range`` (no sub-second zoom for new or few points)."""
    if (bounds := time_range(times, end=end, min_span=min_span)) is not None:
        fig.update_xaxes(range=bounds, type="date")
    return fig


def value_range(values: Sequence[float | None], *, lower: float | None = None,
                upper: float | None = None) -> list[float] | None:
    """A y range around ``values`` with room for their labels, clipped to the metric's bounds when given.

    Plotly's default for one point is value ± 0.5 or so (a 0–1.5 axis for an f1 of 0.8), which shows
    nothing; a few close values get a band of at least 10 % of their size so they do not fill the height.
    """
    found = [float(v) for v in values if v is not None]
    if not found:
        return None
    low, high = min(found), max(found)
    span = max(high - low, abs(high) * 0.1, 1e-9)
    bottom, top = low - span * 0.4, high + span * 0.4
    if lower is not None:
        bottom = max(bottom, lower)
    if upper is not None:
        top = min(top, upper)
    return [bottom, top]


def metric_by_version(versions: Sequence[int], values: Sequence[float | None], *, metric: str,
                      bounded: bool = True) -> go.Figure:
    """A metric per version on a categorical axis ("v1", "v2"), each point labelled with its value."""
    labels = [f"v{n}" for n in versions]
    fig = go.Figure(go.Scatter(
        x=labels, y=list(values), mode="lines+markers+text" if len(labels) > 1 else "markers+text",
        text=[number(v) for v in values], textposition="top center", marker={"size": 10, "color": REFERENCE},
        line={"color": REFERENCE}, hovertemplate="%{x}: %{text}<extra></extra>", name=metric))
    fig.update_xaxes(type="category", title="version")
    fig.update_yaxes(range=value_range(values, lower=0.0 if bounded else None, upper=1.05 if bounded else None),
                     title=metric)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=False,
                      title=f"{metric} across versions")
    return fig
