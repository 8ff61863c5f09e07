"""Audit log: filter the hash-chained events, verify the chain, export CSV, look up a prediction."""

import json
from datetime import UTC, datetime, time, timedelta

import plotly.express as px
import streamlit as st

from core import audit, audit_checkpoints, formats
from core.errors import LeanOpsError
from ui import charts, queries, report_view, resources, session, url_state
from ui.components import message

who = session.actor()
st.title("Audit log")
st.caption("Every change in this workspace, in a hash chain: editing, deleting or reordering any event "
           "breaks the chain from that event on."
           + ("" if who.at_least("admin") else " Details of admin configuration (alert channels, sources, users, "
                                                 "tokens) are shown to admins only."))

params = st.query_params
c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
actor = c1.text_input("Actor", params.get("actor", ""))
url_state.seed("audit-action", "action", [""] + queries.audit_actions())
action = c2.selectbox("Action", [""] + queries.audit_actions(), format_func=lambda a: a or "any action",
                      key="audit-action")
subject = c3.text_input("Subject", params.get("subject", ""), help="e.g. model:churn, dataset:churn, user:ann")
days = c4.date_input("Time range", value=(), help="leave empty for all time")
since = datetime.combine(days[0], time(), UTC) if len(days) >= 1 else None
until = datetime.combine(days[1], time(), UTC) + timedelta(days=1) if len(days) == 2 else None
for name, value in (("actor", actor.strip()), ("action", action), ("subject", subject.strip())):
    url_state.keep(name, value or None)  # the filter in the address: a link shows the same events
where = audit.EventFilter(actor=actor.strip(), action=action, subject=subject.strip(), since=since, until=until)

if st.session_state.get("audit_filter") != where:  # a new filter starts at the newest page
    st.session_state["audit_filter"], st.session_state["audit_cursors"] = where, [None]
cursors: list = st.session_state["audit_cursors"]
total = queries.audit_count(where)
page = queries.audit_page(where, cursors[-1], who)
st.caption(f"{total:,} matching events · page {len(cursors)} of {max(1, -(-total // 50)):,}")
DETAILS_SHOWN = 72  # characters of details that fit their column; the whole event opens below the table
st.dataframe(page.assign(details=page["details"].map(
                 lambda d: formats.shorten(formats.value(json.loads(d)), DETAILS_SHOWN))),
             hide_index=True, width="stretch", height=min(38 + 35 * len(page), 600),
             column_config={"#": st.column_config.NumberColumn(width=50),
                            "time": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", width=150),
                            "actor": st.column_config.TextColumn(width="medium"),  # system:schedule:… is long
                            "action": st.column_config.TextColumn(width="medium"),
                            "details": st.column_config.TextColumn("details", width="large",
                                                                   help="cut with … : pick the event below to "
                                                                        "read all of it")})
left, right, _ = st.columns([1, 1, 6])
if left.button("Newer", disabled=len(cursors) == 1):
    cursors.pop()
    st.rerun()
if right.button("Older", disabled=len(page) < 50):
    cursors.append(int(page["#"].iloc[-1]))
    st.rerun()

if not page.empty:
    opened = st.selectbox("Details of event", page["#"].tolist(), index=None, placeholder="pick an event #",
                          key="audit-details", format_func=lambda n: next(
                              f"#{n} · {r.action} · {r.actor} · {r.time:%Y-%m-%d %H:%M:%S}"
                              for r in page.itertuples() if r[1] == n))
    if opened is not None:
        st.json(json.loads(page.loc[page["#"] == opened, "details"].iloc[0]))

if subject and not page.empty:
    st.subheader(f"Timeline of {subject}")
    fig = px.scatter(page.assign(details=page["details"].map(lambda d: formats.shorten(d, 80))), x="time",
                     y="action", color="actor", hover_data=["#", "details"], height=320)
    charts.fit_time_axis(fig, list(page["time"]))  # a few events seconds apart are not a millisecond chart
    st.plotly_chart(fig, width="stretch")

st.subheader("Integrity")


def verify_integrity() -> None:
    """The chain against its signed checkpoints; the verdict is recorded in the chain as this user's."""
    bar = st.progress(0.0, text="verifying the hash chain…")
    try:
        check = audit_checkpoints.verify_and_record(
            resources.session_factory(), resources.settings(), actor=who,
            progress=lambda done, n: bar.progress(min(done / max(n, 1), 1.0), text=f"verified {done:,} of {n:,}"))
    except LeanOpsError as exc:  # e.g. a malformed audit key
        st.error(message(exc))
        return
    finally:
        bar.empty()
    result = check.result
    if result.ok:
        st.success(f"Chain intact: {result.reason}.")
    elif result.first_bad is None:  # the checkpoint log itself was edited
        st.error(f"Chain not verified: {result.reason}.")
    else:
        st.error(f"Chain broken at event {result.first_bad}: {result.reason}. "
                 f"Events 1–{result.checked} are intact.")


if st.button("Verify integrity", type="primary"):
    verify_integrity()

st.subheader("Export")
if st.button("Prepare CSV of this filter"):
    with resources.session_factory()() as s:
        st.session_state["audit_csv"] = audit.export_csv(s, reader=who, where=where)
if csv := st.session_state.get("audit_csv"):
    st.download_button("Download CSV", csv, file_name="leanops-audit.csv", mime="text/csv")

st.subheader("Prediction lookup")
report_view.prediction_lookup(who)
