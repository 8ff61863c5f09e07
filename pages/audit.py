"""Audit log: filter the hash-chained events, verify the chain, export CSV, look up a prediction."""

from datetime import UTC, datetime, time, timedelta

import plotly.express as px
import streamlit as st

from core import audit
from ui import queries, report_view, resources, session

who = session.actor()
st.title("Audit log")
st.caption("Every change in this workspace, in a hash chain: editing, deleting or reordering any event "
           "breaks the chain from that event on."
           + ("" if who.at_least("admin") else " Details of admin configuration (alert channels, sources, users, "
                                                 "tokens) are shown to admins only."))

params = st.query_params
c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
actor = c1.text_input("Actor", params.get("actor", ""))
action = c2.selectbox("Action", [""] + queries.audit_actions(), format_func=lambda a: a or "any action")
subject = c3.text_input("Subject", params.get("subject", ""), help="e.g. model:churn, dataset:churn, user:ann")
days = c4.date_input("Time range", value=(), help="leave empty for all time")
since = datetime.combine(days[0], time(), UTC) if len(days) >= 1 else None
until = datetime.combine(days[1], time(), UTC) + timedelta(days=1) if len(days) == 2 else None
where = audit.EventFilter(actor=actor.strip(), action=action, subject=subject.strip(), since=since, until=until)

if st.session_state.get("audit_filter") != where:  # a new filter starts at the newest page
    st.session_state["audit_filter"], st.session_state["audit_cursors"] = where, [None]
cursors: list = st.session_state["audit_cursors"]
total = queries.audit_count(where)
page = queries.audit_page(where, cursors[-1], who)
st.caption(f"{total:,} matching events · page {len(cursors)} of {max(1, -(-total // 50)):,}")
st.dataframe(page, hide_index=True, width="stretch", height=min(38 + 35 * len(page), 600))
left, right, _ = st.columns([1, 1, 6])
if left.button("Newer", disabled=len(cursors) == 1):
    cursors.pop()
    st.rerun()
if right.button("Older", disabled=len(page) < 50):
    cursors.append(int(page["#"].iloc[-1]))
    st.rerun()

if subject and not page.empty:
    st.subheader(f"Timeline of {subject}")
    fig = px.scatter(page, x="time", y="action", color="actor", hover_data=["#", "details"], height=320)
    st.plotly_chart(fig, width="stretch")

st.subheader("Integrity")
if st.button("Verify integrity", type="primary"):
    bar = st.progress(0.0, text="verifying the hash chain…")
    with resources.session_factory()() as s:
        result = audit.verify(s, progress=lambda done, n: bar.progress(min(done / max(n, 1), 1.0),
                                                                       text=f"verified {done:,} of {n:,}"))
    bar.empty()
    if result.ok:
        st.success(f"Chain intact: {result.reason}.")
    else:
        st.error(f"Chain broken at event {result.first_bad}: {result.reason}. "
                 f"Events 1–{result.checked} are intact.")

st.subheader("Export")
if st.button("Prepare CSV of this filter"):
    with resources.session_factory()() as s:
        st.session_state["audit_csv"] = audit.export_csv(s, reader=who, where=where)
if csv := st.session_state.get("audit_csv"):
    st.download_button("Download CSV", csv, file_name="leanops-audit.csv", mime="text/csv")

st.subheader("Prediction lookup")
report_view.prediction_lookup(who)
