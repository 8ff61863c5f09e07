"""Registry: models and versions, gates, one-click promotion, approvals, rollback, production timeline."""

import pandas as pd
import streamlit as st

import ui.url_state as url_state  # the page's selection in its address
from core.errors import LeanOpsError
from core.promotion import approvals, gates, moves
from ui import (
    batch_view,
    import_view,
    names,
    queries,
    registry_view,
    resources,
    session,
    training_queries,
    training_view,
)
from ui.components import act, message, plain, verdict, verdict_column
from ui.confirm import asked

who = session.actor()
st.title("Registry")
import_view.panel(who)  # a model trained elsewhere, evaluated and gated by LeanOps
models = queries.models()
if not models:
    st.info("No model versions yet: launch one on the Training page.")
    st.stop()

st.dataframe(pd.DataFrame([{"model": m.name, "champion": f"v{m.champion}" if m.champion else "none yet",
                            "challenger": f"v{m.challenger}" if m.challenger else "none",
                            "versions": m.versions, "task": m.task, "last trained": m.last_trained}
                           for m in models]), hide_index=True, width="stretch")
url_state.seed("reg-model", "model", [m.name for m in models])  # ?model=… (a link, a reload) picks it
model = st.selectbox("Model", [m.name for m in models], key="reg-model")  # keyed: Training opens a version here
url_state.keep("model", model)
row = next(m for m in models if m.name == model)
versions = queries.model_versions(model)
factory, settings = resources.session_factory(), resources.settings()
batch_view.panel(who, model)  # "Score a file": an upload or a dataset version scored as a job


def move(fn, success: str) -> None:  # fn: an alias-moving core call
    try:
        fn()
    except gates.GatesFailed as exc:
        st.error(message(exc))
        registry_view.gate_table([c.__dict__ for c in exc.result.checks])
        return
    except LeanOpsError as exc:
        st.error(message(exc))
        return
    st.cache_data.clear()
    st.session_state["registry_notice"] = success
    st.session_state["move-reason-done"] = True  # the next run empties the reason box (it is drawn already)
    st.rerun()


if notice := st.session_state.pop("registry_notice", None):
    st.success(message(notice))

st.subheader(f"Versions of {plain(model)}")
st.dataframe(pd.DataFrame([{
    "version": v.version, "role": ", ".join(v.aliases) or "—", "gates": verdict(v.gates_passed),
    v.primary_metric or "score": v.score, "model": v.model_kind, "dataset": v.dataset, "trained by": v.created_by,
    "trained": v.trained_at} for v in versions]), hide_index=True, width="stretch",
    column_config={"gates": verdict_column("gates"),  # a number column still sorts; 3 decimals are what matter
                   versions[0].primary_metric or "score": st.column_config.NumberColumn(format="%.3f")})

url_state.seed(f"reg-version-{model}", "version", [v.version for v in versions], cast=int)
chosen = st.selectbox("Version", [v.version for v in versions], format_func=lambda n: f"v{n}",
                      key=f"reg-version-{model}")  # keyed: Training opens a version here
url_state.keep("version", chosen)
version = next(v for v in versions if v.version == chosen)
made_by = training_queries.run_detail(version.run_id)  # run ↔ job ↔ version, both ways (issue 19)
if st.button(f"Trained by {plain(names.label_of(made_by, relative=True))} "
             f"(run {made_by.id}, {names.job_label(made_by.job_id)})", key="reg-open-run", type="tertiary",
             icon=":material/arrow_outward:", help="open this run in Training"):
    training_view.open_run(made_by.id)
champion = next((v for v in versions if v.version == row.champion), None)
registry_view.metric_deltas(version, champion)
registry_view.lineage(version, queries.champion_periods(model))
import_view.provenance(model, version.version)
registry_view.gate_summary(version.gates_passed, version.gate_checks)
registry_view.gate_table(version.gate_checks)
registry_view.model_card(model, version.version, who)
registry_view.report_downloads(model, version.version, who)
if version.version == row.challenger:
    registry_view.shadow_panel(model, who)

if st.session_state.pop("move-reason-done", False):
    st.session_state["move-reason"] = ""  # a done move's reason must not be recorded again with the next one
reason = st.text_input("Reason (recorded with the move)", key="move-reason")
buttons = st.columns(4)
gates_pass = version.gates_passed is True  # only then is promoting the obvious next step
needs_approval = queries.policy_needs_approval(model)  # then a promotion is asked for, never offered and refused
if who.at_least("approver") and not needs_approval and asked(
        "Promote to production", key=f"reg-promote-{model}-{version.version}", where=buttons[0],
        question=f"Promote v{version.version} of {model} to production? It serves every prediction from now on"
                 + (f" (the champion now is v{row.champion})." if row.champion else "."),
        yes="Yes, promote", type="primary" if gates_pass else "secondary", disabled=version.version == row.champion,
        help="already the champion" if version.version == row.champion else None if gates_pass else
        "this version's gates did not pass: promotion will be refused (Force promote is for emergencies)"):
    move(lambda: moves.promote(factory, settings, actor=who, model=model, version=version.version, reason=reason),
         f"v{version.version} is now the champion of {model}.")
if who.at_least("scientist") and needs_approval and buttons[0].button(
        "Request promotion", type="primary" if gates_pass else "secondary", disabled=version.version == row.champion,
        help=f"{model}'s policy requires approval: approvers see the request on their Overview"):
    if act(lambda s: approvals.request_promotion(s, actor=who, model=model, version=version.version, reason=reason,
                                                 settings=settings)):
        st.success(f"Promotion of v{version.version} requested; approvers see it below and on their Overview.")
        st.cache_data.clear()
if who.at_least("approver") and asked(
        "Roll back", key=f"reg-rollback-{model}", where=buttons[2], disabled=row.champion is None,
        question=f"Roll {model} back from its champion v{row.champion} to the previous champion?",
        yes="Yes, roll back"):
    move(lambda: moves.rollback(factory, settings, actor=who, model=model, reason=reason), f"{model} rolled back.")
if who.at_least("admin") and buttons[3].button("Force promote", help="Emergencies only: needs a reason, "
                                                "and is flagged in the history, the audit log and reports"):
    move(lambda: moves.promote(factory, settings, actor=who, model=model, version=version.version, reason=reason,
                               force=True), f"v{version.version} FORCE-promoted.")

requests = queries.pending_requests(model)
if not requests.empty:
    st.subheader("Pending requests")
    st.caption("Approving a promotion request promotes once the gates pass; approving a rollback request "
               "(raised by the automatic rollback when the policy says `rollback.auto: approve`) rolls back now.")
    st.dataframe(requests, hide_index=True, width="stretch")
    if who.at_least("approver"):
        url_state.seed("reg-request", "request", requests["request"].tolist(), cast=int)  # from an approver's inbox
        pick = st.selectbox("Request", requests["request"].tolist(), key="reg-request")
        url_state.keep("request", pick)
        asks = str(requests.set_index("request").loc[pick, "asks to"])
        comment = st.text_input("Comment", key="approval-comment")
        left, right, _ = st.columns([1, 1, 4])
        if asked("Approve", key=f"reg-approve-{pick}", where=left, yes="Yes, approve",
                 question=f"Approve request {pick} ({asks} of {model})? "
                          + ("The champion rolls back now." if asks.startswith("roll back") else
                             "The version is promoted now if its gates pass.")):
            move(lambda: approvals.decide(factory, settings, actor=who, request_id=int(pick), approve=True,
                                          comment=comment), f"Request {pick} approved.")
        if right.button("Reject"):
            move(lambda: approvals.decide(factory, settings, actor=who, request_id=int(pick), approve=False,
                                          comment=comment), f"Request {pick} rejected.")
if requests.empty or not who.at_least("approver"):
    url_state.keep("request", None)

st.subheader("Production timeline")
registry_view.timeline(queries.champion_periods(model))
registry_view.metric_over_versions(versions)
