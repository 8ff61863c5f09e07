"""Training page pieces: the runs table with its column chooser, a run's links, and the compare view.

The links go both ways: a run names the job that ran it and the version it registered (and opens them on
Jobs and Registry); Registry and Jobs open a run here through ``open_run``.
"""

from __future__ import annotations

import streamlit as st

from core.training.runs import RunDetail
from ui import names, resources
from ui import training_charts as charts
from ui import training_queries as q
from ui.components import plain

NUMBER = st.column_config.NumberColumn(format="%.4g")


def open_run(run_id: int) -> None:
    """Show run ``run_id`` on the Training page (from Registry or Jobs)."""
    st.session_state["tr-run"] = run_id
    st.switch_page("app_pages/training.py")


def runs_table(listing: q.RunsPage) -> None:
    """The page of runs, sortable by any column (numbers stay numbers), showing the columns the user chose."""
    columns = list(listing.table.columns)
    shown = st.multiselect("Columns", columns, default=[c for c in q.DEFAULT_COLUMNS if c in columns],
                           key="tr-columns", help="add metrics or hyperparameters as columns; click a header "
                                                  "to sort by it")
    config = {m: NUMBER for m in ("score", *listing.metric_columns)}
    config |= {"seconds": st.column_config.NumberColumn(format="%.1f"),
               "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
               "run": st.column_config.NumberColumn(format="%d"), "job": st.column_config.NumberColumn(format="%d"),
               "version": st.column_config.NumberColumn(format="%d"),
               "name": st.column_config.TextColumn(help="the model version a run registered (or its run number "
                                                        "when it registered none)")}
    st.dataframe(listing.table[shown or columns], hide_index=True, width="stretch", column_config=config)


def links(run: RunDetail) -> None:
    """Run ↔ job ↔ version: where this run came from and what it made, each a click away."""
    made = names.version_label(run.model_name, run.model_version) if run.model_version is not None else None
    how = f"ran as job #{run.job_id}" if run.job_id is not None else "trained from the command line"
    st.markdown(f"Run {run.id} · {how} · "
                + (f"registered **{plain(made)}**" if made else f"registered no version ({run.status})"))
    url = names.mlflow_run_url(resources.settings().mlflow_ui_url, experiment_id=run.mlflow_experiment_id,
                               run_id=run.mlflow_run_id)
    left, middle, right, _ = st.columns([1, 1, 1, 1])
    if made and left.button(f"Open {made} in Registry", key="tr-open-version"):
        st.session_state.update({"reg-model": run.model_name, f"reg-version-{run.model_name}": run.model_version})
        st.switch_page("app_pages/registry.py")
    if run.job_id is not None and middle.button(f"Open job #{run.job_id} in Jobs", key="tr-open-job"):
        st.session_state["job-log"] = run.job_id
        st.switch_page("app_pages/jobs.py")
    if url:
        right.link_button("Open in MLflow", url, help="this run in MLflow's own UI")


def search_chart(run: RunDetail) -> None:
    if run.search and (fig := charts.search_parallel(run.search, run.primary_metric)) is not None:
        st.plotly_chart(fig, key="tr-search-parallel")


def compare(ids: list[int], labels: dict[int, str]) -> None:
    """Runs side by side: metrics (with the best run named), the parameters that differ, a bar chart."""
    compared = st.multiselect("Runs to compare", ids, default=ids[:2] if len(ids) > 1 else [], key="tr-compare",
                              format_func=lambda r: labels.get(r, f"run {r}"), max_selections=6)
    if not compared:
        return
    result = q.comparison(tuple(compared))
    runs = [c for c in result.metrics.columns if c != "best"]
    wide = st.column_config.TextColumn(width="medium")  # the metric's or parameter's name, shown whole
    st.dataframe(result.metrics, width="stretch", column_config={"_index": wide, **{r: NUMBER for r in runs}})
    everything = st.toggle("Show the parameters that are the same too", key="tr-compare-all")
    params = result.params if everything else result.params[result.params["comparison"] == "different"]
    if params.empty:
        st.caption("The compared runs have the same parameters and settings.")
    else:
        st.caption("Parameters and settings" + ("" if everything else " that differ between these runs"))
        st.dataframe(params, width="stretch", column_config={"_index": wide})
    shown = [m for m in ("f1", "accuracy", "precision", "recall", "roc_auc", "r2") if m in result.metrics.index]
    if shown and len(compared) > 1:
        st.plotly_chart(charts.compare(result.metrics, shown), key="tr-compare-chart")
