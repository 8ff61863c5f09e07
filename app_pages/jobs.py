"""Jobs: the queue with live progress, history with logs, schedules with pause/resume."""

import pandas as pd
import streamlit as st

from core.platform import job_queue, schedules
from ui import names, queries, session, training_view
from ui.attention import job_view
from ui.components import act, ago, badge, code, job_row, message, plain
from ui.cron_words import cron_words
from ui.url_state import keep, seed, seed_many, wanted

who = session.actor()
st.title("Jobs")


@st.fragment(run_every=2)
def queue() -> None:
    who = session.recheck()  # a fragment rerun skips the page's check: a revoked tab must not act
    st.subheader("Queue")
    active = queries.job_list(statuses=("queued", "running"), limit=25)
    ids, before = {j.id for j in active}, st.session_state.get("jobs-active", set())
    st.session_state["jobs-active"] = ids
    if before - ids:  # a job finished: rerun the whole page so the history below lists it
        st.rerun()
    if not active:
        st.caption("Nothing queued or running.")
    for job in active:
        heartbeat = f" · heartbeat {ago(job.heartbeat_at)}" if job.status == "running" else ""
        job_row(job, who, key="cancel", label=f"**#{job.id} {job.kind}** — {plain(job.stage)}{heartbeat}")


queue()

if who.at_least("scientist"):
    with st.expander("Check the workers: run a diagnostic job"):
        seconds = st.number_input("Seconds", min_value=1, max_value=3600, value=20)
        if st.button("Queue diagnostic job"):
            job = act(lambda s: job_queue.enqueue(s, actor=who, kind="diagnostic.sleep", params={"seconds": seconds}))
            if job is not None:
                st.success(f"Queued job #{job.id}; it appears above when a worker takes it.")

st.subheader("History")
seed_many("jobs-status", "status", ["succeeded", "failed", "cancelled"])  # ?status=failed (Overview's count)
status_filter = st.multiselect("Status", ["succeeded", "failed", "cancelled"], key="jobs-status")
keep("status", ",".join(status_filter) or None)
page_no = st.number_input("Page", min_value=1, value=1, step=1)
history = queries.job_list(statuses=tuple(status_filter) or ("succeeded", "failed", "cancelled"),
                           limit=25, offset=(page_no - 1) * 25)
table = pd.DataFrame([{
    "job": j.id, "status": j.status, "kind": j.kind, "made": names.made_by_job(j.result), "by": j.created_by,
    "queued": j.created_at, "finished": j.finished_at,
    "seconds": (j.finished_at - j.started_at).total_seconds() if j.finished_at and j.started_at else None,
    "error": j.error or "",
} for j in history])
if (linked := wanted("job", cast=int)) is not None and linked not in {j.id for j in history}:
    if (found := job_view(linked)) is not None and found.status in ("succeeded", "failed", "cancelled"):
        history = [found, *history]  # a link names a job that is not on this page of the history
if table.empty:
    st.caption("No finished jobs yet.")
else:
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"seconds": st.column_config.NumberColumn(format="%.1f"),
                                "made": st.column_config.TextColumn(width="medium", help="the version (and run) "
                                                                    "a training job registered"),
                                "status": st.column_config.TextColumn("status", help="succeeded, failed or cancelled")})
    # Keyed: a new finished job changes the options, and an unkeyed picker would reset to nothing.
    seed("job-log", "job", [j.id for j in history], cast=int)  # ?job=21 (a link from Overview or a teammate)
    chosen = st.selectbox("Show the log of job", [j.id for j in history], index=None, placeholder="pick a job",
                          key="job-log")
    keep("job", chosen)
    if chosen is not None:
        job = next(j for j in history if j.id == chosen)
        if job.error:
            st.error(message(job.error))
        if job.result:
            st.json(job.result, expanded=False)
        if isinstance(run_id := (job.result or {}).get("training_run"), int) and st.button(
                f"Open {plain(names.made_by_job(job.result))} in Training", key="job-open-run"):
            training_view.open_run(run_id)
        st.code(job.log or "(empty log)", language="text")

st.subheader("Schedules")
rows = queries.schedule_list()
if not rows:
    st.caption("No schedules.")
for sched in rows:
    left, right = st.columns([5, 1])
    state = badge("cancelled", text="paused", color="orange") if sched.paused else f"next run {ago(sched.next_run_at)}"
    next_at = f" ({sched.next_run_at:%Y-%m-%d %H:%M} UTC)" if sched.next_run_at and not sched.paused else ""
    left.markdown(f"**{plain(sched.name)}** · {plain(cron_words(sched.cron))} ({code(sched.cron)}) · "
                  f"{sched.kind} · {state}{next_at} · last run {ago(sched.last_run_at)}  \n"
                  f"{plain(sched.description)}")
    if who.at_least("admin"):
        label = "Resume" if sched.paused else "Pause"
        if right.button(label, key=f"sched-{sched.name}"):
            act(lambda s, n=sched.name, p=not sched.paused: schedules.set_paused(s, actor=who, name=n, paused=p),
                success=f"{sched.name}: {label.lower()}d")
            st.rerun()
