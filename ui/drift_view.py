"""Drift page pieces: stored checks as frames, and the charts people read instead of tables."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import formats
from core.monitoring import checks as monitoring
from core.monitoring.checks import CheckView
from ui import charts, resources
from ui.components import code, plain

COLUMN_FIELDS = ["column", "kind", "method", "statistic", "p_value", "psi", "drifted"]


CHECKS_PAGE = 200  # drift checks charted and listed at a time


@st.cache_data(ttl=5)
def checks(model: str, limit: int = CHECKS_PAGE, offset: int = 0) -> list[CheckView]:
    """The newest ``limit`` drift checks of ``model`` after the ``offset`` newest, oldest first (for charts)."""
    with resources.session_factory()() as session:
        return list(reversed(monitoring.history(session, model=model, limit=limit, offset=offset)))


@st.cache_data(ttl=5)
def check_count(model: str) -> int:
    with resources.session_factory()() as session:
        return monitoring.count_of_model(session, model=model)


def checks_page(model: str) -> list[CheckView]:
    """One page of ``model``'s drift checks (oldest first): the newest page unless the reader picks an older
    one; the caption says which of how many are shown, so nothing is left out silently."""
    total = check_count(model)
    pages = max(1, -(-total // CHECKS_PAGE))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Checks page (1 = newest {CHECKS_PAGE}; {pages} pages)", 1, pages, 1,
                                   key="drift-checks-page"))
    shown = checks(model, CHECKS_PAGE, (page - 1) * CHECKS_PAGE)
    if pages > 1 and shown:
        st.caption(f"Showing checks {(page - 1) * CHECKS_PAGE + 1:,}–{(page - 1) * CHECKS_PAGE + len(shown):,} "
                   f"of {total:,} (newest first: {shown[-1].ts:%Y-%m-%d %H:%M} back to {shown[0].ts:%Y-%m-%d %H:%M} "
                   "UTC); pick another page for older ones.")
    return shown


def column_table(check: CheckView) -> pd.DataFrame:
    """One row per column of a check (drifted first), plus the model's predictions when compared."""
    items = list(check.columns.items())
    if check.predictions:
        items.append(("(predictions)", check.predictions))
    table = pd.DataFrame([{"column": name, **{k: stats.get(k) for k in COLUMN_FIELDS[1:]}} for name, stats in items],
                         columns=COLUMN_FIELDS)
    table["column"] = [name if name == "(predictions)" else plain(name) for name, _ in items]  # st.table: Markdown
    table["drifted"] = table["drifted"].map({True: "yes", False: "no"}).fillna("—")
    return table.sort_values(["drifted", "column"], ascending=[True, True], key=_drifted_first).reset_index(drop=True)


def _drifted_first(values: pd.Series) -> pd.Series:
    return values.map(lambda v: 0 if v == "yes" else 1) if values.name == "drifted" else values


# The report's frame may run scripts (Evidently draws its charts with them) but nothing else: without
# allow-same-origin its document has an opaque origin, so it cannot reach the dashboard's DOM, storage
# or cookies, and no popups, forms, downloads or top-level navigation.
REPORT_SANDBOX = "allow-scripts"


def report_frame(report_html: str) -> str:
    """A wrapper page that shows ``report_html`` in a sandboxed, opaque-origin ``<iframe srcdoc>``.

    ``st.iframe(html)`` puts an HTML string in a srcdoc frame on the dashboard's own origin (its
    sandbox includes allow-same-origin), fine for this wrapper, which is ours; the report, whose
    content comes partly from prediction traffic, is only ever the inner frame's ``srcdoc``
    (attribute-escaped). A nested frame's sandbox flags are limited to its parent's, never widened.
    """
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0;height:100%;'
            "overflow:hidden}iframe{display:block;border:0;width:100%;height:100%}</style></head><body>"
            f'<iframe sandbox="{REPORT_SANDBOX}" referrerpolicy="no-referrer" title="Evidently drift report" '
            f'srcdoc="{html.escape(report_html, quote=True)}"></iframe></body></html>')


def stored_report(path: Path) -> str:
    """A stored report's HTML, its embedded JSON escaped again (reports written before that was done)."""
    from core.monitoring import report

    text = path.read_text(encoding="utf-8")
    try:
        return report.escape_embedded_json(text)  # a no-op on reports written since
    except report.UnrecognisedReport:
        return text  # a withheld-report notice (ours), or not Evidently's layout: shown sandboxed all the same


def show_report(report_html: str, *, height: int = 900) -> None:
    """Show a stored Evidently report in its own opaque-origin frame (``report_frame``)."""
    st.iframe(report_frame(report_html), height=height, alt="Evidently drift report")


def share_chart(history: list[CheckView]) -> None:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=[c.ts for c in history], y=[c.drift_share for c in history], mode="lines+markers",
        marker={"color": ["#d62728" if c.drift_detected else "#2ca02c" for c in history], "size": 9},
        customdata=[[c.version, c.window, c.current_rows] for c in history],
        hovertemplate="%{x}<br>drift share %{y:.0%}<br>v%{customdata[0]} · %{customdata[1]} · "
                      "%{customdata[2]} rows<extra></extra>", name="drift share"))
    fig.add_hline(y=history[-1].threshold, line_dash="dash", line_color="#d62728",
                  annotation_text=f"threshold {history[-1].threshold:.0%}")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis={"tickformat": ".0%",
                      "range": [0, 1.05]}, title="Share of drifted columns per check")
    charts.fit_time_axis(fig, [c.ts for c in history])
    st.plotly_chart(fig, width="stretch")


def heatmap(history: list[CheckView]) -> None:
    """Column × check heatmap of each column's drift score relative to its own threshold (≥ 1 = drifted)."""
    import plotly.graph_objects as go

    columns = sorted({name for c in history for name in c.columns})
    z = [[_score(c.columns.get(name)) for c in history] for name in columns]
    text = [[_hover(c.columns.get(name)) for c in history] for name in columns]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"#{c.id} {c.ts:%m-%d %H:%M}" for c in history], y=[_chart_text(c) for c in columns], text=text,
        zmin=0, zmax=2,
        colorscale=[[0, "#f7fbff"], [0.499, "#9ecae1"], [0.5, "#fdae6b"], [1, "#b30000"]],
        hovertemplate="%{y} · %{x}<br>%{text}<extra></extra>", colorbar={"title": "score / threshold"}))
    fig.update_layout(height=max(220, 26 * len(columns) + 90), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title="Drift per column and check (red = drifted)")
    st.plotly_chart(fig, width="stretch")


def _chart_text(value: object) -> str:
    """Column names and category values for Plotly, which renders <a href>, <b> … in labels: as text."""
    return html.escape(str(value), quote=False)


def _score(stats: dict[str, Any] | None) -> float | None:
    """How far a column is into drift: 1.0 is exactly at its threshold (tests use p-values, distances scores)."""
    if not stats:
        return None
    threshold, statistic, p_value = stats.get("threshold"), stats.get("statistic"), stats.get("p_value")
    if stats.get("method") in ("ks", "chisquare") and p_value is not None and threshold:
        return min(2.0, threshold / max(p_value, 1e-12))
    if statistic is not None and threshold:
        return min(2.0, float(statistic) / float(threshold))
    return 1.5 if stats.get("drifted") else 0.0


def _hover(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "not compared"
    p_value = stats.get("p_value")
    parts = [f"{stats.get('method')} {formats.number(stats.get('statistic') or 0)}"]
    if p_value is not None:
        parts.append(f"p {formats.p_value(p_value)}")
    if stats.get("psi") is not None:
        parts.append(f"PSI {formats.number(stats['psi'])}")
    return " · ".join(parts) + (" · drifted" if stats.get("drifted") else "")


def distribution(stats: dict[str, Any], column: str) -> None:
    """Reference vs current on the same bins or categories, when the check stored them."""
    import plotly.graph_objects as go

    ref, cur = stats.get("reference_hist"), stats.get("current_hist")
    # numeric bins are named from their edges here (3 significant digits, separators), not from the
    # stored labels, which older checks wrote in scientific notation ("1.234e+04 – 2.5e+04")
    edges = stats.get("edges")
    bins = formats.bin_labels(edges) if edges and stats.get("bins") else stats.get("bins")
    labels = bins or stats.get("categories")
    if not (ref and cur and labels):
        st.caption("This check stored no histogram for the column.")
        return
    total_ref, total_cur = max(sum(ref), 1), max(sum(cur), 1)
    names = [_chart_text(b) for b in labels]
    fig = go.Figure([go.Bar(x=names, y=[v / total_ref for v in ref], name="reference (training)",
                            marker_color=charts.REFERENCE),
                     go.Bar(x=names, y=[v / total_cur for v in cur], name="current", marker_color=charts.CURRENT)])
    axis = "value range" if stats.get("bins") else "category"
    fig.update_layout(barmode="group", height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis={"type": "category", "title": f"{_chart_text(column)} ({axis})"},
                      yaxis={"tickformat": ".0%", "title": "share of rows"},
                      title=f"{_chart_text(column)}: reference vs current")
    st.plotly_chart(fig, width="stretch")


def performance_chart(points: pd.DataFrame, metric: str, baseline: float | None, floor: float | None) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (version, part) in enumerate(points.groupby("version")):
        fig.add_trace(go.Scatter(x=part["ts"], y=part[metric], mode="lines+markers", name=f"v{version} live",
                                 line_color=charts.series_colour(i)))
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dot", annotation_text=f"training {metric} {formats.number(baseline)}")
    if floor is not None:
        fig.add_hline(y=floor, line_dash="dash", line_color="#d62728", annotation_text=f"floor {formats.number(floor)}")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title=f"Live {metric} from feedback")
    charts.fit_time_axis(fig, list(points["ts"]))
    st.plotly_chart(fig, width="stretch")


def settings_summary(rules: Any) -> None:
    """The drift, performance, retrain, rollback and alert rules of one model, in words."""
    d, p, r, rb = rules.drift, rules.performance, rules.retrain, rules.rollback
    floor = ", ".join(f"{metric} {rule}" for task in p.floor.values() for metric, rule in task.items())
    st.markdown(
        f"- **Columns:** tests up to {d.large_sample_rows:,} rows (KS / χ², drift when p < {d.p_value:g}); "
        f"distances above (Wasserstein > {d.wasserstein:g}, Jensen-Shannon > {d.jensenshannon:g}); PSI "
        f"reported, {d.psi:g} marks a large shift.\n"
        f"- **Data drift:** when at least {d.share:.0%} of the columns drift. Scheduled check: "
        f"{code(d.schedule or 'off')} over the last {d.window_hours:g} h (at least {d.min_rows} rows).\n"
        f"- **Performance floor:** {floor} over the last {p.window} labelled predictions "
        f"(verdict from {p.min_labels} labels).\n"
        f"- **Retrain:** {'on drift · ' if r.on_drift else ''}"
        f"{'schedule ' + code(r.schedule) + ' · ' if r.schedule else ''}"
        f"{f'when data grows ≥ {r.on_data_growth:.0%} · ' if r.on_data_growth is not None else ''}"
        f"{'on API upload' if r.on_upload else ''}; a passing retrain is "
        f"{'promoted automatically' if rules.auto_promote else 'made challenger for approvers'}.\n"
        f"- **Automatic rollback:** {'on' if rb.auto else 'off'}, within {rb.window_hours:g} h of a promotion.\n"
        f"- **Alerts:** one per model and condition every {rules.alerts.cooldown_minutes:g} min.")


def alerts_for(model: str, limit: int = 10) -> None:
    from core.alerts import notify

    with resources.session_factory()() as session:
        rows = notify.recent(session, limit=limit, model=model)
    table = pd.DataFrame([{"time": a.ts, "condition": a.condition, "title": a.title, "delivery": a.status}
                          for a in rows])
    if table.empty:
        st.caption(f"No alerts about {plain(model)} yet.")
    else:
        st.dataframe(table, hide_index=True, width="stretch")


def live_series(performance: Any, model: str, rules: Any) -> Any:
    """The live metrics of ``model`` over time (a ``performance.Series``), computed once per page run: the
    performance chart and the estimate chart both draw it."""
    with resources.session_factory()() as session:
        return performance.chart(session, model=model, rules=rules, store=resources.settings().data_store)


def performance_section(series: Any, rules: Any) -> None:
    """Rolling live metrics (feedback joined with logged predictions) against the baseline and floor."""
    from core.policy import PRIMARY

    points = series.points
    if not series.complete:
        st.caption(f"From the newest {series.labels:,} labelled predictions (since {series.since:%Y-%m-%d %H:%M} "
                   "UTC); older labels are not charted.")
    if not points:
        st.caption(f"No verdict yet: live metrics need at least {rules.performance.min_labels} feedback labels "
                   "(`POST /v1/models/{name}/feedback` with the predictions' request_id).")
        return
    latest = max(p.version for p in points)
    task = "classification" if "f1" in points[-1].metrics else "regression"
    metric = PRIMARY[task]
    frame = pd.DataFrame([{"ts": p.ts, "version": p.version, "labels": p.labels, **p.metrics} for p in points])
    floor_rule = rules.performance.floor.get(task, {}).get(metric)
    floor = float(floor_rule.split()[-1]) if floor_rule else None
    base = next((p.baseline.get(metric) for p in reversed(points) if p.version == latest), None)
    performance_chart(frame, metric, base, floor)


def verdict_box(check: CheckView) -> None:
    """The one verdict in words: why the data counts as drifted, or why drifted columns do not count.

    A drifted column never sits under a "stable" headline without its reason (not important enough,
    too few columns, outputs unmoved), so nobody has to reconcile the two by hand.
    """
    said = check.verdict
    drifted = check.drifted
    if check.drift_detected:
        reasons = "\n".join(f"- {plain(r.get('text', r.get('rule')))}" for r in said.get("reasons", []))
        st.error(f"**Drift: {plain(monitoring.headline(check))}.** It counts because:\n{reasons}\n\n"
                 f"Drifted: {', '.join(map(plain, drifted)) or 'no column (the model outputs moved)'}")
    elif drifted:
        why = "\n".join(f"- {plain(t)}" for t in said.get("not_counted", [])) or (
            f"- checked before the model-weighted verdict: {check.drift_share:.0%} of the columns drifted, "
            f"below the {check.threshold:.0%} share")
        st.info(f"**Stable, although {len(drifted)} column(s) drifted.** Drifted: {', '.join(map(plain, drifted))}. "
                f"They do not make the data count as drifted because:\n{why}")
    else:
        st.success("**Stable:** no column and none of the model's outputs drifted.")


def importance_table(check: CheckView) -> pd.DataFrame:
    """The per-column table led by what matters: drifted columns by their share of the model's importance."""
    table = column_table(check)
    shares = {plain(n): c.get("importance") for n, c in check.columns.items()}
    table.insert(2, "importance", table["column"].map(shares))
    drifted_first = table["drifted"].map(lambda v: 0 if v == "yes" else 1)
    order = sorted(range(len(table)), key=lambda i: (drifted_first.iloc[i], -(table["importance"].iloc[i] or 0)))
    return table.iloc[order].reset_index(drop=True)


def estimate_section(history: list[CheckView], live: pd.DataFrame | None) -> None:
    """The label-free estimate of the latest check, and its history charted beside the realised metric."""
    import plotly.graph_objects as go

    estimated = [c for c in history if c.estimated_performance]
    if not estimated:
        st.caption("No estimate yet: checks of versions trained before estimation was added have none.")
        return
    latest = estimated[-1].estimated_performance
    cols = st.columns(len(latest))
    for col, (metric, est) in zip(cols, latest.items(), strict=True):
        delta = None if est.get("reference") is None else f"{est['value'] - est['reference']:+.3f} vs holdout"
        col.metric(f"Estimated {metric}", f"{est['value']:.3f}", delta=delta,
                   delta_color="inverse" if metric in ("mae", "rmse") else "normal",
                   help=f"95 % band {est['lower']:.3f} – {est['upper']:.3f}; holdout {est.get('reference')}")
    metric = "f1" if "f1" in latest else "rmse" if "rmse" in latest else next(iter(latest))
    points = [(c.ts, c.estimated_performance[metric]) for c in estimated if metric in c.estimated_performance]
    fig = go.Figure([
        go.Scatter(x=[t for t, _ in points] + [t for t, _ in reversed(points)],
                   y=[e["upper"] for _, e in points] + [e["lower"] for _, e in reversed(points)],
                   fill="toself", mode="lines", line={"width": 0}, fillcolor="rgba(148,103,189,0.15)",
                   name="95 % band",
                   hoverinfo="skip"),
        go.Scatter(x=[t for t, _ in points], y=[e["value"] for _, e in points], mode="lines+markers",
                   name=f"estimated {metric} (no labels)", line_color=charts.ESTIMATE,
                   error_y={"type": "data", "symmetric": False, "color": charts.ESTIMATE,  # the band of one point
                            "array": [e["upper"] - e["value"] for _, e in points],
                            "arrayminus": [e["value"] - e["lower"] for _, e in points]}),
    ])
    if live is not None and not live.empty and metric in live.columns:
        fig.add_trace(go.Scatter(x=live["ts"], y=live[metric], mode="lines", name=f"realised {metric} (feedback)",
                                 line_color=charts.REFERENCE))
    if points and points[-1][1].get("reference") is not None:
        fig.add_hline(y=points[-1][1]["reference"], line_dash="dot", annotation_text=f"holdout {metric}")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      title=f"Estimated vs realised {metric}")
    shown = live["ts"].tolist() if live is not None and not live.empty and metric in live.columns else []
    charts.fit_time_axis(fig, [t for t, _ in points] + shown)
    st.plotly_chart(fig, width="stretch")


def live_points(series: Any) -> pd.DataFrame:
    """Realised metrics from feedback over time (empty before enough labels), from ``live_series``."""
    return pd.DataFrame([{"ts": p.ts, "version": p.version, **p.metrics} for p in series.points])


def build_report(check_id: int) -> None:
    """Build a check's Evidently report now, in this process (when no worker has got to its job yet)."""
    from core.monitoring import report

    report.build_for_check(resources.session_factory(), resources.settings(), check_id)
