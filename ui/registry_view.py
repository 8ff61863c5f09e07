"""Registry page pieces: gate table, lineage, model card, report downloads, production timeline, metric chart."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from core import formats, policy
from core.actors import Actor
from core.compliance import reports
from core.registry import cards
from ui import charts, resources
from ui.components import act, badge, code, plain, verdict, verdict_column


def gate_summary(passed: bool | None, checks: list[dict]) -> None:
    """The version's gate verdict in words: a badge, and how many checks failed."""
    if passed is None:
        st.markdown(f"**Gates** {badge('not evaluated')}")
        return
    failed = sum(not c["passed"] for c in checks)
    text = "passed" if passed else f"failed: {failed} of {len(checks)} checks"
    st.markdown(f"**Gates** {badge(verdict(passed), text=text)}")


def gate_table(checks: list[dict]) -> None:
    if not checks:
        st.caption("Gates not evaluated yet.")
        return
    st.dataframe(pd.DataFrame([{"result": verdict(c["passed"]), "check": c["name"],
                                "observed": formats.value(c["observed"]), "required": formats.value(c["required"]),
                                "detail": c.get("detail", "")} for c in checks]),
                 hide_index=True, width="stretch", column_config={"result": verdict_column("result")})


def metric_deltas(version, champion) -> None:  # VersionRows (champion: None when there is none)
    names = [m for m in ("f1", "accuracy", "roc_auc", "r2", "rmse", "mae") if m in version.metrics][:4]
    cols = st.columns(max(len(names), 1))
    for col, name in zip(cols, names, strict=False):
        value = version.metrics[name]
        delta = None
        if champion is not None and champion.version != version.version and name in champion.metrics:
            change = value - champion.metrics[name]
            delta = f"{'+' if change >= 0 else ''}{formats.number(change)} vs champion v{champion.version}"
        col.metric(name, formats.number(value), delta, delta_color="inverse" if name in ("rmse", "mae") else "normal")


def lineage(version, periods) -> None:
    mine = [p for p in periods if p.version == version.version]
    served = ", ".join(f"{p.start:%Y-%m-%d %H:%M} → {p.end:%Y-%m-%d %H:%M}" if p.end else
                       f"{p.start:%Y-%m-%d %H:%M} → now (the current champion)" for p in mine)
    served = served or "not yet: this version has never been the champion"
    st.markdown(f"**Dataset** {code(version.dataset)} (sha256 {code(version.dataset_sha256[:12])}…) → "
                f"**run** #{version.run_id} (MLflow {code(version.mlflow_run_id)}) by {plain(version.created_by)} → "
                f"**version** {version.version} ({plain(version.model_kind)}) → **in production** {served}")


HOW_COLOURS = {"promote": charts.GOOD, "rollback": charts.CURRENT}  # a forced move is red


def timeline(periods) -> None:
    """Who was champion when: bars on a time axis at least an hour wide (a promotion 0.7 s ago is a bar, not a
    chart of milliseconds), and the same periods as a table."""
    if not periods:
        st.caption("No version has been champion yet.")
        return
    now = datetime.now(UTC)
    frame = pd.DataFrame([{"version": f"v{p.version}", "start": p.start, "end": p.end or now,
                           "how": p.action + (" (FORCED)" if p.forced else ""), "by": p.moved_by, "reason": p.reason}
                          for p in periods])
    shown = frame.assign(by=frame["by"].map(plain), reason=frame["reason"].map(plain))  # st.table renders Markdown
    colours = {how: charts.BAD if "force" in how.lower() else HOW_COLOURS.get(how, charts.REFERENCE)
               for how in frame["how"]}
    fig = px.timeline(frame, x_start="start", x_end="end", y="version", color="how", hover_data=["by", "reason"],
                      color_discrete_map=colours, height=180 + 40 * frame["version"].nunique())
    fig.update_yaxes(type="category", categoryorder="category descending", title=None)
    charts.fit_time_axis(fig, [p.start for p in periods], end=now)
    st.plotly_chart(fig, width="stretch")
    st.table(shown.sort_values("start", ascending=False).assign(
        start=lambda f: f["start"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        end=[("now" if p.end is None else f"{p.end:%Y-%m-%d %H:%M:%S}") for p in
             sorted(periods, key=lambda p: p.start, reverse=True)]).set_index("version"))


BOUNDED = {"f1", "accuracy", "roc_auc", "precision", "recall", "balanced_accuracy"}  # scores within 0–1


def metric_over_versions(versions) -> None:
    """One metric per version: a number for a single version, a labelled point per version ("v1", "v2") else."""
    names = sorted({m for v in versions for m, x in v.metrics.items() if isinstance(x, int | float)})
    if not names:
        return
    default = versions[0].primary_metric if versions[0].primary_metric in names else names[0]
    metric = st.selectbox("Metric across versions", names, index=names.index(default))
    ordered = sorted((v for v in versions if v.metrics.get(metric) is not None), key=lambda v: v.version)
    if len(ordered) < 2:  # one point is a number, not a chart
        if ordered:
            st.metric(f"{metric} of v{ordered[0].version} (the only version with it so far)",
                      formats.number(ordered[0].metrics[metric]))
        return
    st.plotly_chart(charts.metric_by_version([v.version for v in ordered], [v.metrics[metric] for v in ordered],
                                             metric=metric, bounded=metric in BOUNDED), width="stretch")


def model_card(model: str, version: int, who: Actor) -> None:
    """The version's model card: a form with Save for scientists and up, read-only text for viewers."""
    with resources.session_factory()() as s:
        card = cards.get(s, model=model, version=version)
    st.markdown("**Model card**")
    if not who.at_least("scientist"):
        for label, text in (("Intended use", card.intended_use), ("Limitations", card.limitations),
                            ("Owner", card.owner)):
            st.markdown(f"*{label}:* {plain(text) if text else '—'}")  # typed by scientists: text, never markup
        return
    with st.form(f"model-card-{model}-{version}"):
        intended = st.text_area("Intended use", card.intended_use, height=80)
        limitations = st.text_area("Limitations", card.limitations, height=80)
        owner = st.text_input("Owner", card.owner)
        if card.updated_by:
            st.caption(f"Last edited by {plain(card.updated_by)} at {card.updated_at:%Y-%m-%d %H:%M} UTC")
        if st.form_submit_button("Save"):
            saved = act(lambda s: cards.save(s, actor=who, model=model, version=version,
                                                   intended_use=intended, limitations=limitations, owner=owner),
                        success="Model card saved.")
            if saved is not None:
                st.rerun()  # the form shows what was stored, with its new "last edited" line


def report_downloads(model: str, version: int, who: Actor) -> None:
    """Both report formats, generated (and audited as report.generated) only when a button is clicked."""
    def make(fmt: str) -> Callable[[], bytes]:  # for st.download_button: builds the files only when clicked
        def data() -> bytes:
            # PDF and JSON of one snapshot (the PDF cites the JSON's sha256): the second button, clicked within a
            # few minutes, hands out the other half of the same pair.
            import time

            key = f"report-pair-{model}-{version}"
            made = st.session_state.get(key)
            if made is None or time.monotonic() - made[0] > 300:
                pdf, as_json = reports.generate_pair(resources.session_factory(), resources.settings(), actor=who,
                                                     model=model, version=version)
                made = st.session_state[key] = (time.monotonic(), pdf.data, as_json.data)
            return made[1] if fmt == "pdf" else made[2]

        return data

    left, right, _ = st.columns([1, 1, 1])
    left.download_button("Download compliance report (PDF)", make("pdf"), width="stretch",
                         file_name=f"compliance-{model}-v{version}.pdf", mime="application/pdf", on_click="ignore",
                         key=f"report-pdf-{model}-{version}")
    right.download_button("Download compliance report (JSON)", make("json"), width="stretch",
                          file_name=f"compliance-{model}-v{version}.json", mime="application/json", on_click="ignore",
                          key=f"report-json-{model}-{version}")


def shadow_panel(model: str, who: Actor) -> None:
    """The challenger's shadow comparison: the paired numbers, the policy's decision, and a chart over time."""
    from core.errors import LeanOpsError
    from core.monitoring import shadow_comparison

    st.subheader("Shadow")
    try:  # the first comparison in a while loads both versions for their label-free estimates: seconds
        with st.spinner("Comparing the challenger with the champion …"):
            found = shadow_comparison.shared(resources.session_factory(), resources.settings(), actor=who,
                                             model=model)
    except LeanOpsError as exc:
        st.error(str(exc))
        return
    if not found.compared:
        st.caption("No shadow comparison yet: turn `shadow.enabled` on in the policy; the challenger then also "
                   "scores the champion's live requests (never returned to the client).")
        return
    cols = st.columns(5)
    cols[0].metric("Records compared", f"{found.compared:,}")
    cols[1].metric("Agreement", f"{found.agreement:.1%}" if found.agreement is not None else "—")
    cols[2].metric("Labelled", f"{found.labelled:,}")
    cols[3].metric(f"Champion v{found.champion} {found.metric}", _num(found.champion_score))
    cols[4].metric(f"Challenger v{found.challenger} {found.metric}", _num(found.challenger_score),
                   delta=_num(found.challenger_score - found.champion_score)
                   if found.challenger_score is not None and found.champion_score is not None else None,
                   delta_color="normal" if found.metric == "accuracy" else "inverse")
    test = "McNemar" if found.metric == "accuracy" else "Wilcoxon signed-rank"
    colour = {"promote": "green", "discard": "red"}.get(found.decision)
    st.markdown(f"**Policy's decision** {badge(found.decision, color=colour)} · {test} p = {_num(found.p_value)}")
    st.caption(f"Median time per request: the champion answered in {_num(found.champion_latency_ms)} ms end to end; "
               f"the challenger spent {_num(found.challenger_latency_ms)} ms of model time on it, in shadow batches "
               "after the answer had gone out.")
    for reason in found.reasons:
        st.caption(plain(reason))
    st.caption(_acting(resources.settings().policies.rules_for(model).shadow))
    if found.champion_estimate or found.challenger_estimate:
        st.caption(f"Estimated {found.metric} without labels (CBPE or DLE, on the champion's records of the last "
                   f"day, both versions on the same records): champion {_band(found.champion_estimate)}, "
                   f"challenger {_band(found.challenger_estimate)}. The paired labels decide; the estimates "
                   "only when shadow.max_days passes without enough labels and performance.use_estimate is on.")
    else:
        st.caption("No label-free estimate: the versions stored no estimator, or there is no recent traffic. "
                   "The scores are realised metrics on the records with feedback labels.")
    days = pd.DataFrame(found.days)
    if len(days):
        long = days.melt(id_vars="day", value_vars=["agreement", "champion_score", "challenger_score"],
                         var_name="series", value_name="value").dropna()
        figure = px.line(long, x="day", y="value", color="series", markers=True,
                         color_discrete_map={"champion_score": charts.REFERENCE, "challenger_score": charts.CURRENT,
                                             "agreement": charts.NEUTRAL},
                         title="Agreement and each model's score per day")
        figure.update_xaxes(type="category")  # one point per day: a time axis would tick milliseconds
        st.plotly_chart(figure, width="stretch")


def _num(value: float | None) -> str:
    return formats.number(value)


def _acting(rules: policy.Shadow) -> str:
    """What the monitor round does with the decision, by the model's ``shadow`` policy."""
    if not rules.enabled:
        return "shadow.enabled is off: the challenger scores no new records and nothing is decided."
    if rules.decide == "alert":
        return ("shadow.decide is alert: once decided, approvers get a promotion request or an alert; "
                "nothing moves by itself.")
    return ("shadow.decide is promote: once decided, the monitor round promotes the challenger (through the gates "
            "and approvals) or clears its alias.")


def _band(estimate: dict[str, float] | None) -> str:
    if not estimate:
        return "none"
    return f"{_num(estimate['value'])} (band {_num(estimate['lower'])}–{_num(estimate['upper'])})"
