"""Overview: what is going on in this workspace."""

import streamlit as st

from ui import alerts_view, queries, serving_queries
from ui.components import STATUS_ICON, ago, plain

st.title("Overview")
counts = queries.overview_counts()
cols = st.columns(4)
cols[0].metric("Jobs running", counts.jobs.get("running", 0))
cols[1].metric("Jobs queued", counts.jobs.get("queued", 0))
cols[2].metric("Jobs failed", counts.jobs.get("failed", 0))
cols[3].metric("Audit events", counts.audit_events)


@st.fragment(run_every=3)
def running_jobs() -> None:
    active = queries.job_list(statuses=("queued", "running"), limit=10)
    st.subheader("Running jobs")
    if not active:
        st.caption("No job is queued or running.")
    for job in active:
        st.progress(job.progress, text=f"{STATUS_ICON[job.status]} #{job.id} {job.kind} — {plain(job.stage)} "
                                       f"(by {plain(job.created_by)}, {ago(job.created_at)})")


running_jobs()
alerts_view.recent_panel()
st.subheader("Recent activity")
st.dataframe(queries.recent_events(), hide_index=True, width="stretch")


@st.fragment(run_every=5)
def serving() -> None:
    st.subheader("Serving")
    traffic = serving_queries.traffic()
    if traffic.empty:
        st.caption("No predictions in the last 15 minutes. The API (`python cli.py serve`) serves each model's "
                   "champion at POST /v1/models/NAME/predict.")
        return
    st.dataframe(traffic, hide_index=True, width="stretch",
                 column_config={"error rate": st.column_config.NumberColumn(format="percent")})
    st.caption("Recent predictions")
    st.dataframe(serving_queries.recent_predictions(), hide_index=True, width="stretch")


serving()
