"""Registry: "Score a file" (an upload or a dataset version scored by the champion as a queued job: progress,
Cancel, download) and the explanation waterfall of one logged prediction (the Audit log's prediction lookup)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import streamlit as st

from core.actors import Actor
from core.errors import LeanOpsError
from ui import resources, session, training_queries
from ui.components import act, dataset_version, job_row, message, plain

JOB = "batch-job-{model}"


def panel(who: Actor, model: str) -> None:
    """The "Score a file" panel of ``model``: what to score, then the job's progress and its download."""
    if not who.at_least("scientist"):
        return
    key = JOB.format(model=model)
    with st.expander("Score a file", expanded=key in st.session_state, icon=":material/batch_prediction:"):
        st.caption(f"Every row scored by {plain(model)}'s champion, chunk by chunk, as a job: the output holds the "
                   "input columns (or only the id column), `prediction` and a probability per class; every row is "
                   "logged and monitored like live traffic. Nothing is written until every row is scored.")
        what = st.radio("Rows to score", ["Upload a file", "A dataset version"], horizontal=True,
                        key=f"batch-what-{model}")
        upload, dataset = None, None
        if what == "Upload a file":
            upload = st.file_uploader("File to score (CSV or Parquet)", key=f"batch-file-{model}")
        else:
            names = training_queries.dataset_names()
            left, right = st.columns(2)
            name = left.selectbox("Dataset", names, key=f"batch-dataset-{model}")
            number = dataset_version(right, "Dataset version", name, key=f"batch-dataset-version-{model}-{name}")
            dataset = f"{name}:{number}" if name and number else None
        left, right, fmt = st.columns([2, 1, 1])
        id_column = left.text_input("Id column (optional)", key=f"batch-id-{model}",
                                    help="write only this column beside the predictions; feedback names rows by it")
        explain = right.checkbox("Explain", key=f"batch-explain-{model}",
                                 help="add shap_<column> contributions and shap_base (slower)")
        out_format = fmt.selectbox("Output", ["parquet", "csv"], key=f"batch-format-{model}")
        if st.button("Score", type="primary", key=f"batch-score-{model}", disabled=upload is None and dataset is None):
            job_id = _queue(who, model, upload, dataset, id_column.strip() or None, explain, out_format)
            if job_id is not None:
                st.session_state[key] = job_id
        if key in st.session_state:
            _progress(who, model, int(st.session_state[key]))


def _queue(who: Actor, model: str, upload: Any, dataset: str | None, id_column: str | None, explain: bool,
           out_format: str) -> int | None:
    from core.serving import batch_jobs

    settings = resources.settings()
    staged = None
    if upload is not None:
        try:
            staged = batch_jobs.stage_upload(settings, filename=upload.name, data=upload,
                                             max_bytes=settings.max_upload_mb * 2**20)
        except LeanOpsError as exc:
            st.error(message(exc))
            return None
    job = act(lambda s: batch_jobs.queue(s, settings, actor=who, model=model, staged=staged,
                                         filename=upload.name if upload is not None else None,
                                         dataset=None if staged else dataset, id_column=id_column, explain=explain,
                                         out_format=out_format))
    return job.id if job is not None else None


@st.fragment(run_every=2)
def _progress(who: Actor, model: str, job_id: int) -> None:
    who = session.recheck()  # a fragment rerun skips the page's check: a revoked tab must not act
    from core.platform import job_queue
    from core.platform.database import reading

    factory = resources.session_factory()
    with reading(factory) as db:
        job = job_queue.get(db, job_id)
    if job.status in ("queued", "running"):
        job_row(job, who, label=f"scoring job #{job.id}", key="batch-cancel")
        return
    if job.status != "succeeded":
        st.error(message(f"Scoring job #{job.id} {job.status}: {job.error or ''}"))
        return
    result = job.result or {}
    st.success(message(f"Scored {result.get('rows', 0):,} rows with {model} v{result.get('version')} "
                       f"in {result.get('seconds', 0):.1f} s (batch {result.get('batch_id')})."))
    data, name = _output(model, job_id)
    st.download_button("Download scored file", data=data, file_name=name, key=f"batch-download-{job_id}",
                       mime="text/csv" if name.endswith(".csv") else "application/octet-stream",
                       icon=":material/download:")


@st.cache_data(ttl=60, max_entries=4)
def _output(model: str, job_id: int) -> tuple[bytes, str]:
    from core.platform.database import reading
    from core.serving import batch_jobs

    store = resources.settings().data_store
    with reading(resources.session_factory()) as db:
        key, name = batch_jobs.output_of(db, store, model=model, job_id=job_id)
    return store.read_bytes(key), name


# -- the waterfall of one logged prediction ---------------------------------------------------------------

@st.cache_data(ttl=300, max_entries=32)
def _explained(request_id: str, record_index: int) -> dict[str, Any]:
    from core.serving.explain_logged import explain_logged

    return explain_logged(resources.session_factory(), resources.settings(), request_id=request_id,
                          record_index=record_index)


def waterfall(request_id: str, records: list[int]) -> None:
    """Why one logged record got its answer: base value, the biggest contributions, the explained output."""
    import plotly.graph_objects as go

    st.markdown("**Why this answer** (per-column contributions)")
    index = st.selectbox("Record", records, key=f"why-record-{request_id}") if len(records) > 1 else records[0]
    try:
        why = _explained(request_id, int(index))
    except LeanOpsError as exc:
        st.info(message(f"No explanation for this record: {exc}"))
        return
    items = sorted(why["contributions"].items(), key=lambda kv: -abs(kv[1]))
    top, rest = items[:8], items[8:]
    # plotly draws its labels as text with a little HTML (not Markdown): escaped, never marked up
    labels = ["base value", *[html.escape(k) for k, _ in top]] + (["other columns"] if rest else []) + ["output"]
    values = [why["base"], *[v for _, v in top]] + ([sum(v for _, v in rest)] if rest else []) + [why["output"]]
    measures = ["absolute", *["relative"] * (len(labels) - 2), "total"]
    figure = go.Figure(go.Waterfall(orientation="h", measure=measures, y=labels, x=values,
                                    text=[f"{v:+.3f}" if m == "relative" else f"{v:.3f}"
                                          for v, m in zip(values, measures, strict=True)],
                                    textposition="outside"))
    figure.update_layout(height=80 + 34 * len(labels), margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis={"autorange": "reversed"},
                         title=html.escape(f"{why['model']} v{why['version']}: {why['explained']}"))
    st.plotly_chart(figure, key=f"why-chart-{request_id}-{index}")
    st.caption(f"Method: {why['method']}. Base value + contributions = {why['output']:.4f}.")
    st.dataframe(pd.DataFrame([{"column": k, "contribution": v} for k, v in items]), hide_index=True)


# -- the Drift page: what the model leans on, then and now ---------------------------------------------------

@st.cache_data(ttl=600, max_entries=8)
def _global(model: str, hours: float) -> Any:
    from core.monitoring.global_explanations import mean_contributions

    return mean_contributions(resources.session_factory(), resources.settings(), model=model, hours=hours)


def global_explanations(model: str, hours: float) -> None:
    """Mean |contribution| per column for the training data and the current window, side by side."""
    import plotly.graph_objects as go

    st.subheader("What the model leans on")
    if not st.toggle("Show mean contribution per column (training data vs the current window)",
                     key=f"drift-global-{model}"):
        return
    try:
        found = _global(model, float(hours))
    except LeanOpsError as exc:
        st.info(message(f"No explanation of {model}: {exc}"))
        return
    table = found.table
    figure = go.Figure([go.Bar(name=f"training data ({found.reference_rows} rows)", y=table["column"],
                               x=table["reference"], orientation="h"),
                        go.Bar(name=f"last {hours:g} h ({found.current_rows} rows)", y=table["column"],
                               x=table["current"], orientation="h")])
    figure.update_layout(barmode="group", height=120 + 40 * len(table), yaxis={"autorange": "reversed"},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"},
                         xaxis_title=f"mean |contribution| ({found.explained})")
    st.plotly_chart(figure, key=f"drift-global-chart-{model}")
    st.caption(f"v{found.version}, {found.method}. A column whose bar grows is one the model relies on more now.")
    st.dataframe(table, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.4f") for c in ("reference", "current", "change")})
