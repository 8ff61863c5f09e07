"""Drift: checks per model over time, the per-column table, the Evidently report, live performance, settings."""

from pathlib import Path

import streamlit as st

from core import formats, policy
from core.monitoring import checks
from core.platform import job_queue
from ui import batch_view, dataset_queries, drift_view, queries, resources, session
from ui.components import act, ago, code, job_row, plain
from ui.drift_story import false_alarms, fit_width, held_back, why_they_differ
from ui.url_state import keep, seed

who = session.actor()
settings = resources.settings()
st.title("Drift")
models = queries.models()
if not models:
    st.info("No models yet: train one on the Training page, promote it, and its drift shows here.")
    st.stop()

names = sorted((m.name for m in models), key=lambda n: next(m.champion is None for m in models if m.name == n))
seed("drift-model", "model", names)  # ?model=…&check=… (a link from Overview or a teammate)
model = st.selectbox("Model", names, index=0, key="drift-model")
keep("model", model)
row = next(m for m in models if m.name == model)
rules = settings.policies.rules_for(model)
history = drift_view.checks_page(model)

# -- run a check ----------------------------------------------------------------------------------


@st.fragment(run_every=2)
def running_checks() -> None:
    who = session.recheck()  # a fragment rerun skips the page's check: a revoked tab must not act
    active = [j for kind in ("drift.check", "drift.report")  # a check, then its Evidently report (built after)
              for j in queries.job_list(statuses=("queued", "running"), kind=kind, limit=10)
              if j.params.get("model") == model]
    for job in active:
        what = "drift check" if job.kind == "drift.check" else "Evidently report"
        job_row(job, who, key="drift-cancel", label=f"**{what} #{job.id}** — {plain(job.stage)}")
    if st.session_state.get("drift-waiting") and not active:
        st.session_state.pop("drift-waiting")
        st.cache_data.clear()
        st.rerun()


if who.at_least("scientist"):
    with st.expander("Check now", expanded=not history):
        source = st.radio("Current data", ["Logged predictions", "Upload a batch", "Dataset version"],
                          horizontal=True, key="drift-source")
        params: dict | None = {"model": model}
        if source == "Logged predictions":
            params |= {"source": "window", "hours": st.number_input(
                "Window (hours of logged predictions)", min_value=0.1, value=float(rules.drift.window_hours))}
        elif source == "Upload a batch":
            upload = st.file_uploader("Batch (CSV or Parquet, the model's input columns)", type=["csv", "parquet"])
            params = None if upload is None else params | {"source": "upload", "filename": upload.name}
        else:
            datasets = dataset_queries.dataset_table()["dataset"].tolist()
            dataset = st.text_input("Dataset (NAME or NAME:VERSION)", value=datasets[0] if datasets else "")
            params = params | {"source": "dataset", "dataset": dataset.strip()} if dataset.strip() else None
        if st.button("Run drift check", type="primary", disabled=params is None or row.champion is None,
                     help=None if row.champion else f"{model} has no champion to compare with"):
            if source == "Upload a batch":
                params["file"] = str(checks.stage_upload(settings, upload.name, upload.getvalue(),
                                                         max_bytes=settings.max_upload_mb * 2**20))
            job = act(lambda s: job_queue.enqueue(s, actor=who, kind="drift.check", params=params))
            if job is not None:
                st.session_state["drift-waiting"] = True
                st.success(f"Drift check queued as job #{job.id}; results appear below when it finishes.")
running_checks()

if not history:
    st.info(f"No drift checks of {plain(model)} yet. The scheduled check runs "
            f"{code(rules.drift.schedule or 'never')} (UTC) "
            f"over the last {rules.drift.window_hours:g} h of logged predictions.")
else:
    latest = history[-1]
    drifted = [name for name, stats in latest.columns.items() if stats.get("drifted")]
    cols = st.columns(4)
    cols[0].metric("Latest drift share", f"{latest.drift_share:.0%}", help=f"threshold {latest.threshold:.0%}")
    cols[1].metric("Drifted columns", f"{len(drifted)} of {len(latest.columns)}")
    cols[2].metric("Verdict", "drift" if latest.drift_detected else "stable",
                   help="weighs the model: its outputs, its most important columns, then the share of columns")
    cols[3].metric("Checked", ago(latest.ts), help=f"{latest.ts:%Y-%m-%d %H:%M} UTC by {plain(latest.created_by)}")
    st.caption(f"Check #{latest.id}: v{latest.version} · {plain(latest.window)} · "
               f"{latest.current_rows:,} current rows vs {latest.reference_rows:,} training rows")
    drift_view.verdict_box(latest)  # the reasons, or why drifted columns do not count
    st.caption(false_alarms(rules, latest))

    left, right = st.columns(2)
    with left:
        drift_view.share_chart(history)
    with right:
        drift_view.heatmap(history[-30:])

    seed("drift-check", "check", [c.id for c in history], cast=int)
    picked = st.selectbox("Check", [c.id for c in reversed(history)], format_func=lambda i: next(
        f"#{c.id} · {c.ts:%Y-%m-%d %H:%M} · {c.window} · {c.drift_share:.0%}" for c in history if c.id == i),
        key="drift-check")
    keep("check", picked)
    check = next(c for c in history if c.id == picked)
    st.subheader("Per column")
    st.table(drift_view.importance_table(check).style.format(
        {"statistic": formats.number, "p_value": formats.p_value, "psi": formats.number, "importance": "{:.0%}"},
        na_rep="—"))
    held_back(check)  # flagged by a test alone, not counted: the correction or the effect floor says why
    ordered = sorted(check.columns, key=lambda name: not check.columns[name].get("drifted"))  # drifted first
    column = st.selectbox("Distribution of", ordered, index=0 if ordered else None)
    if column:
        drift_view.distribution(check.columns[column], column)

    st.subheader("Evidently report")
    st.caption(why_they_differ(check))
    report = Path(check.report_path) if check.report_path else None
    if report is not None and not report.exists() and report.with_suffix(".sample.parquet").exists():
        st.caption("The Evidently report is being built (a drift.report job; the verdict above did not wait).")
        if who.at_least("scientist") and st.button("Build it now", key="drift-build-report"):
            with st.spinner("Running Evidently on the check's sample…"):
                drift_view.build_report(check.id)
            st.rerun()
    elif report is None or not report.exists():
        st.caption("This check has no Evidently report (it was run without one, or the file was removed).")
    else:
        html = drift_view.stored_report(report)
        st.download_button("Download Evidently report (HTML)", html, file_name=f"drift-{model}-{check.id}.html",
                           mime="text/html")
        with st.expander("Show the Evidently report", expanded=False):
            drift_view.show_report(fit_width(html), height=900)  # sandboxed: its scripts get an opaque origin

# -- live performance -----------------------------------------------------------------------------

st.subheader("Live performance")
try:
    from core.monitoring import performance
except ImportError:  # pragma: no cover - performance monitoring ships with the retrain module
    performance = None
if performance is not None:
    live = drift_view.live_series(performance, model, rules)  # once per run: both charts draw it
    drift_view.performance_section(live, rules)
    st.subheader("Estimated performance (before labels arrive)")
    st.caption("CBPE (classifiers) or DLE (regressors) on each check's data; see docs/monitoring.md for when "
               "the estimate is wrong.")
    drift_view.estimate_section(history, drift_view.live_points(live))

# -- thresholds and alerts ------------------------------------------------------------------------

st.subheader("Thresholds and alerts")
st.caption(f"Effective policy for {plain(model)} (policies.yaml `default`, overridden by {code(f'models.{model}')}).")
drift_view.settings_summary(rules)
if who.at_least("admin"):
    with st.form("drift-settings"):
        st.markdown(f"**Change {plain(model)}'s thresholds** (written to {code(f'models.{model}')} in policies.yaml, "
                    "audited)")
        c1, c2, c3, c4 = st.columns(4)
        drift_values = {
            "p_value": c1.number_input("p-value below", 0.0001, 0.5, rules.drift.p_value, format="%.4f"),
            "wasserstein": c2.number_input("Wasserstein above", 0.001, 10.0, rules.drift.wasserstein, format="%.3f"),
            "jensenshannon": c3.number_input("Jensen-Shannon above", 0.001, 1.0, rules.drift.jensenshannon,
                                             format="%.3f"),
            "share": c4.number_input("Drift share above", 0.01, 1.0, rules.drift.share, format="%.2f"),
        }
        c1, c2, c3 = st.columns(3)
        schedule = c1.text_input("Check schedule (cron, UTC; empty = off)", rules.drift.schedule or "")
        drift_values["window_hours"] = c2.number_input("Window (hours)", 0.1, 24.0 * 90, rules.drift.window_hours)
        cooldown = c3.number_input("Alert cooldown (minutes)", 0.0, 60.0 * 24 * 30, rules.alerts.cooldown_minutes)
        retrain_on_drift = st.checkbox("Retrain when drift is detected", rules.retrain.on_drift)
        if st.form_submit_button("Save thresholds"):
            drift_values["schedule"] = schedule.strip() or None

            def save(s):  # s: a Session
                text = settings.policies.text()
                for section, values in (("drift", drift_values), ("alerts", {"cooldown_minutes": cooldown}),
                                        ("retrain", {"on_drift": retrain_on_drift})):
                    text = policy.with_override(text, model, section, values)
                return settings.policies.save(s, actor=who, text=text)

            if act(save) is not None:
                st.success("Saved; the next check uses these thresholds.")
                st.rerun()
batch_view.global_explanations(model, rules.drift.window_hours)  # mean |contribution|: training vs now
st.caption("Alert channels (Slack, webhook, email) are configured on the Admin page; recent alerts are on Overview.")
drift_view.alerts_for(model)
