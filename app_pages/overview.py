"""Overview: is production OK? One row per model first, then what is going on in this workspace."""

import pandas as pd
import streamlit as st

from core import formats
from ui import alerts_view, inventory_view, queries, serving_queries, session
from ui.attention import panel as attention_panel
from ui.components import STATUS_ICON, ago, badge, plain
from ui.inbox import panel as inbox_panel
from ui.times import localise
from ui.url_state import link

st.title("Overview")
inbox_panel(session.actor())  # approvers: requests waiting for a decision, each linked to its version

health = queries.model_health()
st.subheader("Production")
if not health:
    st.info("No model yet: register a dataset on Datasets, train on Training, promote on Registry.")
else:
    attention = [h.model for h in health if not h.ok]
    st.markdown(badge("passed", text=f"All {len(health)} model(s) OK") if not attention else
                badge("warning", text=f"{len(attention)} of {len(health)} model(s) need attention: "
                                      f"{', '.join(attention)}"))
    attention_panel()  # each reason in full, linked to where to act
    st.dataframe(pd.DataFrame([{
        "model": h.model, "status": "OK" if h.ok else "needs attention", "champion": h.champion, "gates": h.gates,
        "drift": h.drift, "why": h.drift_reason, "performance": h.metric_state, "metric": h.metric,
        "last trained": h.last_trained, "alerts (24 h)": h.alerts_24h} for h in health]),
        hide_index=True, width="stretch", key="ov-health",
        column_config={"why": st.column_config.TextColumn("drift: why", width="large"),
                       "metric": st.column_config.TextColumn("metric vs floor", width="medium"),
                       "alerts (24 h)": st.column_config.NumberColumn(help="warnings and worse in the last 24 h")})

counts = queries.overview_counts()
cols = st.columns(4)
cols[0].metric("Jobs running", counts.jobs.get("running", 0))
cols[1].metric("Jobs queued", counts.jobs.get("queued", 0))
cols[2].metric("Jobs failed", counts.jobs.get("failed", 0))
cols[3].metric("Audit events", formats.count(counts.audit_events))
for col, page, label, params in ((cols[0], "app_pages/jobs.py", "See the queue", None),
                                 (cols[1], "app_pages/jobs.py", "See the queue", None),
                                 (cols[2], "app_pages/jobs.py", "See the failed jobs", {"status": "failed"}),
                                 (cols[3], "app_pages/audit.py", "See the audit log", None)):
    link(col, page, label, params, icon=":material/arrow_outward:")


@st.fragment(run_every=3)
def running_jobs() -> None:
    session.recheck()  # a fragment rerun skips the page's check: a revoked tab sees the login page
    active = queries.job_list(statuses=("queued", "running"), limit=10)
    st.subheader("Running jobs")
    if not active:
        st.caption("No job is queued or running.")
    for job in active:
        st.progress(job.progress, text=f"{STATUS_ICON[job.status]} {job.status} · #{job.id} {job.kind} — "
                                       f"{plain(job.stage)} (by {plain(job.created_by)}, {ago(job.created_at)})")


running_jobs()
inventory_view.reviews_due_section()  # periodic reviews overdue or due within 30 days (Inventory page)
alerts_view.recent_panel()
st.subheader("Recent activity")
st.dataframe(localise(queries.recent_events(), "time"), hide_index=True, width="stretch")


@st.fragment(run_every=5)
def serving() -> None:
    session.recheck()
    st.subheader("Serving")
    traffic = serving_queries.traffic()
    window = "last 15 minutes"
    if traffic.empty:  # quiet just now: say when traffic last came, not only that none came
        traffic, window = serving_queries.traffic(24 * 60), "last 24 hours"
        if traffic.empty:
            st.caption("No predictions in the last 15 minutes, nor in the last 24 hours. The API (`python cli.py "
                       "serve`) serves each model's champion at POST /v1/models/NAME/predict.")
            return
        last = traffic["last"].max()
        st.caption(f"No predictions in the last 15 minutes; {int(traffic['requests'].sum()):,} request(s) in the "
                   f"last 24 hours, the latest {ago(last)}.")
    st.dataframe(traffic, hide_index=True, width="stretch",
                 column_config={"model error rate": st.column_config.NumberColumn(format="percent"),
                                "client error rate": st.column_config.NumberColumn(
                                    format="percent", help="requests refused as the client's mistake (4xx)"),
                                "requests": st.column_config.NumberColumn(help=f"requests in the {window}")})
    st.caption("Recent predictions")
    st.dataframe(serving_queries.recent_predictions(), hide_index=True, width="stretch")


serving()
