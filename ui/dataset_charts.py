"""Plotly figures and tables drawn from a stored dataset profile (no data is read to draw them)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core import formats
from core.data.profile import VersionDiff
from ui import charts
from ui.components import code, message, plain

HEIGHT = 260


def _layout(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=HEIGHT, bargap=0.05,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False)
    return fig


def check_lines(checks: list[dict[str, Any]]) -> list[str]:
    """Markdown bullets: one per check, with what was observed and what was expected."""
    lines = []
    for c in checks:
        column = f" {code(c['column'])}" if c["column"] else ""
        lines.append(f"- **{plain(c['check'])}**{column}: {message(c['observed'])} (expected {message(c['expected'])})")
    return lines


def profile_table(profile: dict[str, Any]) -> pd.DataFrame:
    """One row per column; statistics to 3 significant digits (a mean of 41.28374619 reads as 41.3)."""
    def stat(v: Any) -> str:
        return formats.number(v) if isinstance(v, int | float) and not isinstance(v, bool) else formats.value(v)

    return pd.DataFrame([{"column": c["name"], "kind": c["kind"], "dtype": c["dtype"],
                          "missing": formats.percent(c["missing_share"]), "unique": formats.value(c.get("unique")),
                          **{label: stat(c.get(key)) for label, key in (("mean", "mean"), ("std", "std"),
                                                                        ("min", "min"), ("median", "p50"),
                                                                        ("max", "max"))}}
                         for c in profile["columns"]])


def missing_share(profile: dict[str, Any]) -> go.Figure:
    cols = profile["columns"]
    fig = go.Figure(go.Bar(x=[c["name"] for c in cols], y=[c["missing_share"] for c in cols],
                           marker_color="#d62728"))
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return _layout(fig, "Missing share per column")


def column_chart(col: dict[str, Any]) -> go.Figure | None:
    """A histogram (numbers, dates) or the top categories (text, booleans); None for empty columns."""
    if "hist" in col:
        edges, counts = col["hist"]["edges"], col["hist"]["counts"]
        if col["kind"] == "datetime":
            edges = pd.to_datetime(edges)
            centers = edges[:-1] + (edges[1:] - edges[:-1]) / 2
            widths = [(b - a).total_seconds() * 1000 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        else:
            centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
            widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
        fig = go.Figure(go.Bar(x=centers, y=counts, width=widths, marker_color=charts.REFERENCE,
                               customdata=[f"{formats.number(x)} – {formats.number(y)}"
                                           for x, y in zip(edges[:-1], edges[1:], strict=True)]
                               if col["kind"] != "datetime" else None,
                               hovertemplate="%{customdata}: %{y:,} rows<extra></extra>"
                               if col["kind"] != "datetime" else "%{x}: %{y:,} rows<extra></extra>"))
        # plain numbers with separators on the axis (12,000, not 1.2e+4), and what each axis counts
        fig.update_xaxes(title=col["name"], exponentformat="none", separatethousands=True)
        fig.update_yaxes(title="rows", separatethousands=True)
        return _layout(fig, f"{col['name']} · histogram")
    if "top" in col:
        top = col["top"][:10][::-1]
        fig = go.Figure(go.Bar(x=[n for _, n in top], y=[str(v) for v, _ in top], orientation="h",
                               marker_color=charts.series_colour(2)))  # not green: that colour means "passed"
        fig.update_xaxes(title="rows", separatethousands=True)
        more = f" of {col['unique']}" if col["unique"] > len(top) else ""
        return _layout(fig, f"{col['name']} · top {len(top)}{more} values")
    return None


def diff_table(d: VersionDiff) -> pd.DataFrame:
    return pd.DataFrame([{"column": c["column"], "changed": "changed" if c["changed"] else "same",
                          "PSI": formats.number(c["psi"]), "mean shift (σ)": formats.number(c["shift_sd"]),
                          f"missing v{d.a}": f"{c['missing_a']:.1%}", f"missing v{d.b}": f"{c['missing_b']:.1%}",
                          "new values": ", ".join(c["new_values"]), "gone values": ", ".join(c["gone_values"])}
                         for c in d.columns])


def overlay(col_a: dict[str, Any], col_b: dict[str, Any], a: int, b: int) -> go.Figure | None:
    """Two versions' distributions of one column, as shares, on one chart."""
    fig = go.Figure()
    for col, label, colour in ((col_a, f"v{a}", charts.REFERENCE), (col_b, f"v{b}", charts.CURRENT)):
        if "hist" in col and col["kind"] == "numeric":
            edges, counts = col["hist"]["edges"], col["hist"]["counts"]
            total = sum(counts) or 1
            centers = [(x + y) / 2 for x, y in zip(edges[:-1], edges[1:], strict=True)]
            fig.add_trace(go.Scatter(x=centers, y=[n / total for n in counts], name=label, mode="lines",
                                     line_shape="hvh", line_color=colour))
        elif "top" in col:
            total = sum(n for _, n in col["top"]) or 1
            fig.add_trace(go.Bar(x=[str(v) for v, _ in col["top"]], y=[n / total for _, n in col["top"]], name=label,
                                 marker_color=colour))
        else:
            return None
    fig.update_yaxes(tickformat=".0%", title="share of rows")
    fig.update_xaxes(exponentformat="none", separatethousands=True)
    fig = _layout(fig, f"{col_a['name']}: v{a} vs v{b}")
    fig.update_layout(showlegend=True)
    return fig
