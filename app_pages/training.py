"""Training: launch a run, watch it live, then browse, inspect, compare and reproduce runs."""

import streamlit as st

from core.training import pipeline, runs
from core.training.spec import parse_spec
from ui import names, session
from ui import training_charts as charts
from ui import training_queries as q
from ui import training_view as view
from ui.components import act, ago, badge, code, job_row, message, plain
from ui.training_form import launch_form
from ui.url_state import keep, seed, wanted

PAGE_SIZE = 25
ALL = "All"
who = session.actor()
st.title("Training")

if who.at_least("scientist"):
    with st.expander("New training run", expanded=True):
        raw = launch_form()
        if raw is not None and (job := act(lambda s: pipeline.launch(s, actor=who, spec=parse_spec(raw)))):
            st.session_state.setdefault("tr-live", set()).add(job.id)
            st.success(message(f"Queued training job #{job.id} on {job.params['dataset']}; its progress shows below."))


@st.fragment(run_every=2)
def live() -> None:
    who = session.recheck()  # a fragment rerun skips the page's check: a revoked tab must not act
    active = q.active_jobs()
    watched = st.session_state.setdefault("tr-live", set())
    if done := watched - {j.id for j in active}:  # one finished: redraw the page so the run list shows it
        st.session_state["tr-live"] = {j.id for j in active}
        st.session_state["tr-done"] = [q.job(j) for j in sorted(done)]
        if (run := q.run_for_job(max(done))) is not None:
            st.session_state["tr-run"] = run.id
        st.cache_data.clear()
        st.rerun()
    watched |= {j.id for j in active}
    st.subheader("Running now")
    if not active:
        st.caption("No training job is queued or running.")
    for job in active:
        job_row(job, who, key="tr-cancel",
                label=f"**job #{job.id}** {plain(job.params.get('dataset'))} · "
                      f"{plain(names.kind_label(str(job.params.get('model'))))} → {plain(job.stage)}")


live()
for finished in st.session_state.pop("tr-done", []):
    if finished.status == "succeeded":
        r = finished.result or {}
        st.success(message(f"Job #{finished.id} registered {r.get('model_name')} version {r.get('model_version')}. "
                           f"Its run ({r.get('training_run')}) is shown below."))
    else:
        st.error(f"Job #{finished.id} {finished.status}: {message(finished.error)}")

st.subheader("Runs")
options = q.filter_values()
c1, c2, c3, c4, c5, c6 = st.columns([2, 2, 2, 2, 2, 1])
picked = {name: col.selectbox(f"Filter by {name}", [ALL, *values], key=f"tr-filter-{name}")
          for col, (name, values) in zip((c1, c2, c3), options.items(), strict=True)}
status = c4.selectbox("Filter by status", [ALL, *runs.STATUSES], key="tr-filter-status")
order = c5.selectbox("Order", runs.ORDERS, key="tr-order", help="best: highest primary metric (f1, r2) of all runs",
                     format_func=lambda o: {"newest": "newest first", "best": "best score first"}[o])
filters = [None if v == ALL else v for v in (*picked.values(), status)]
total = q.runs_page(*filters, 1, PAGE_SIZE).total
page = c6.number_input("Page", 1, max(1, -(-total // PAGE_SIZE)), 1, key="tr-page")
listing = q.runs_page(*filters, int(page), PAGE_SIZE, order)
st.caption(f"{listing.total:,} run(s), {'newest' if order == 'newest' else 'best score'} first")
if listing.table.empty:
    st.info("No training runs yet." if not options["dataset"] else "No run matches these filters.")
    st.stop()
view.runs_table(listing)

linked = [r for r in [wanted("run", cast=int)] if r is not None and r not in listing.ids and q.run_exists(r)]
seed("tr-run", "run", [*listing.ids, *linked, st.session_state.get("tr-run")], cast=int)  # ?run=12 opens it
choices = listing.ids if st.session_state.get("tr-run") in listing.ids else [st.session_state.get("tr-run"),
                                                                              *listing.ids]
chosen = st.selectbox("Run", [c for c in choices if c is not None], key="tr-run",
                      format_func=lambda r: listing.labels.get(r) or names.label_of(q.run_detail(r)))
run = q.run_detail(chosen)
keep("run", chosen)
st.markdown(f"### {plain(names.label_of(run, relative=True))} · {badge(run.status)}")
view.links(run)
if run.error:
    st.error(message(run.error))
tiles = {k: v for k, v in run.metrics.items() if k not in charts.FAIRNESS_KEYS}  # fairness has its own line
if tiles:
    cols = st.columns(min(len(tiles), 6))
    for i, (name, value) in enumerate(tiles.items()):
        base = run.baseline.get(name)
        cols[i % len(cols)].metric(name, f"{value:.4f}", None if base is None else f"{value - base:+.4f} vs baseline",
                                   delta_color="off" if name in ("log_loss", "rmse", "mae") else "normal")
plots = run.plots
left, right = st.columns(2)
if "confusion_matrix" in plots:
    left.plotly_chart(charts.confusion_matrix(plots), key="tr-cm")
if "residuals" in plots:
    left.plotly_chart(charts.residuals(plots), key="tr-res")
if plots.get("importance"):
    right.plotly_chart(charts.importance(plots), key="tr-imp")
if plots.get("roc"):
    left.plotly_chart(charts.roc(plots), key="tr-roc")
    right.plotly_chart(charts.precision_recall(plots), key="tr-pr")
if "fairness" in plots:
    st.markdown(f"**Fairness on {code(plots['fairness']['column'])}** · demographic parity ratio "
                f"{plots['fairness'].get('demographic_parity_ratio', float('nan')):.3f} · equalized odds difference "
                f"{plots['fairness'].get('equalized_odds_difference', float('nan')):.3f}")
    st.dataframe(charts.fairness_table(plots), hide_index=True)
if run.search:
    st.markdown(f"**{run.search['method'].title()} search**: {len(run.search['candidates'])} candidates, "
                f"{run.search['folds']}-fold CV; the best was registered")
    view.search_chart(run)
    st.dataframe([{"rank": c["rank"], "CV score": round(c["mean"], 4), "±": round(c["std"], 4), **c["params"]}
                  for c in sorted(run.search["candidates"], key=lambda c: c["rank"])], hide_index=True)

c1, c2 = st.columns(2)
c1.markdown(f"**Dataset** {code(run.dataset_ref)} · sha256 {code(run.dataset_sha256[:12])}… · target "
            f"{code(run.target)}  \n**Model** {code(run.model_name)} version {run.model_version or '—'} · "
            f"{plain(names.kind_label(run.model_kind, run.task))} · {run.task} · seed {run.seed}  \n"
            f"**MLflow** run {code(run.mlflow_run_id or '—')} · "
            f"experiment {code(run.mlflow_experiment_id or '—')} · {code(run.model_uri or '—')}  \n"
            f"**By** {plain(run.created_by)} {ago(run.started_at)} · code {code(run.code_version)}")
c2.json(run.params, expanded=False)
b1, b2, _ = st.columns([1, 1, 3])
if b1.button(f"Open {run.dataset_ref} in Datasets", key="tr-open-dataset"):
    st.session_state.update(ds_name=run.dataset_name, ds_version=run.dataset_version)
    st.switch_page("app_pages/datasets.py")
if who.at_least("scientist") and b2.button("Reproduce", key="tr-reproduce",
                                           help="same dataset version, parameters and seed"):
    if job := act(lambda s: runs.reproduce(s, actor=who, run_id=run.id)):
        st.session_state.setdefault("tr-live", set()).add(job.id)
        st.success(f"Queued job #{job.id}: run {run.id} again on {run.dataset_ref} with seed {run.seed}.")
if run.job_id is not None:
    with st.expander(f"Log of job #{run.job_id}"):
        st.code(q.job(run.job_id).log or "(empty log)", language="text")

st.subheader("Compare runs")
view.compare(listing.ids, listing.labels)
