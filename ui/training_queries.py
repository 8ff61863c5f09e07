"""Cached read queries of the Training page: DataFrames and frozen dataclasses, never ORM objects.

A dataset version never changes, so its column facts are cached for long; run lists briefly (a
running job changes them); the live panel reads the job queue uncached.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from core.data import datasets
from core.platform import job_queue
from core.training import runs
from core.training.catalog import detect_task
from core.training.runs import RunDetail
from ui import names, resources

# The run list's fixed columns; the page's metrics and hyperparameters go between the 4th and the 5th.
RUN_COLUMNS = ["name", "status", "metric", "score", "dataset", "kind", "task", "run", "job", "model", "version", "by",
               "started", "seconds", "error"]
DEFAULT_COLUMNS = ["name", "status", "metric", "score", "dataset", "kind", "job", "started", "seconds"]


def _session() -> Session:
    return resources.session_factory()()


@st.cache_data(ttl=10)
def dataset_names() -> list[str]:
    with _session() as session:
        return [d.name for d in datasets.list_datasets(session) if d.versions]


@st.cache_data(ttl=10)
def dataset_versions(name: str) -> list[int]:
    """Version numbers, newest first."""
    with _session() as session:
        return [v.version for v in datasets.list_versions(session, name=name, limit=200)]


@st.cache_data(ttl=10)
def default_dataset_version(name: str) -> int | None:
    """The version a default picks (newest certified, not deprecated: ``datasets.default_version``); None: none."""
    with _session() as session:
        return datasets.default_number(session, name=name)


@dataclass(frozen=True)
class DatasetShape:
    """What the launch form needs to know about one dataset version's columns."""

    ref: str
    rows: int
    columns: list[str]
    tasks: dict[str, str]  # column → the task it would be as a target
    certificate_passed: bool


@st.cache_data(ttl=3600, max_entries=32)
def dataset_shape(name: str, version: int) -> DatasetShape:
    settings = resources.settings()
    with _session() as session:
        view, frame = datasets.load_frame(session, store=settings.data_store, ref=f"{name}:{version}",
                                          verify=False)
    return DatasetShape(ref=view.ref, rows=view.rows, columns=[str(c) for c in frame.columns],
                        tasks={str(c): detect_task(frame[c]) for c in frame.columns},
                        certificate_passed=view.certificate_passed)


def active_jobs() -> list[job_queue.JobView]:
    """Not cached: the live panel polls it."""
    with _session() as session:
        return job_queue.list_jobs(session, statuses=job_queue.ACTIVE, kind="train", limit=20)


def job(job_id: int) -> job_queue.JobView:
    with _session() as session:
        return job_queue.get(session, job_id)


@st.cache_data(ttl=10)
def filter_values() -> dict[str, list[str]]:
    with _session() as session:
        return runs.filter_values(session)


@dataclass(frozen=True)
class RunsPage:
    total: int
    table: pd.DataFrame  # one row per run; numbers stay numbers, so every column sorts
    ids: list[int]
    labels: dict[int, str]  # run id → names.run_label, for the pickers
    metric_columns: list[str]  # holdout metrics seen on this page (the column chooser offers them)
    param_columns: list[str]  # hyperparameters seen on this page


@st.cache_data(ttl=3)
def runs_page(dataset: str | None, model: str | None, kind: str | None, status: str | None, page: int,
              size: int, order: str = "newest") -> RunsPage:
    """One page of the run list; the filtering, ordering, counting and paging happen in SQL."""
    filters = {"dataset": dataset, "model": model, "kind": kind, "status": status}
    with _session() as session:
        total = runs.count_runs(session, **filters)
        rows = runs.list_runs(session, **filters, order=order, limit=size, offset=(page - 1) * size)
    metric_columns = sorted({m for r in rows for m, v in r.metrics.items() if isinstance(v, int | float)})
    param_columns = sorted({p for r in rows for p in r.params} - set(metric_columns) - set(RUN_COLUMNS))
    table = pd.DataFrame([{
        "name": names.version_label(r.model_name, r.model_version) if r.model_version is not None
        else f"{r.model_name} run {r.id}",
        "status": r.status, "metric": r.primary_metric or "", "score": r.score,
        **{m: r.metrics.get(m) for m in metric_columns},
        **{p: _cell(r.params.get(p)) for p in param_columns},
        "dataset": r.dataset_ref, "kind": names.kind_label(r.model_kind, r.task), "task": r.task, "run": r.id,
        "job": r.job_id, "model": r.model_name, "version": r.model_version, "by": r.created_by,
        "started": r.started_at,
        "seconds": (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
        "error": (r.error or "")[:200],
    } for r in rows], columns=[*RUN_COLUMNS[:4], *metric_columns, *param_columns, *RUN_COLUMNS[4:]])
    for column in ("run", "job", "version"):  # whole numbers with gaps (a CLI run has no job): blank, not "None"
        table[column] = table[column].astype("Int64")
    return RunsPage(total=total, table=table, ids=[r.id for r in rows], labels={r.id: names.label_of(r) for r in rows},
                    metric_columns=metric_columns, param_columns=param_columns)


def _cell(value: object) -> str:
    """A parameter as table text: one column may hold numbers for one model kind and words for another."""
    return "" if value is None else str(value)


@st.cache_data(ttl=3)
def run_detail(run_id: int) -> RunDetail:
    with _session() as session:
        return runs.get_run(session, run_id)


def run_exists(run_id: int) -> bool:
    """Whether run ``run_id`` exists (a link may name one that does not)."""
    from core.errors import NotFound

    try:
        run_detail(run_id)
    except NotFound:
        return False
    return True


def run_for_job(job_id: int) -> RunDetail | None:
    with _session() as session:
        return runs.for_job(session, job_id)


LOWER_IS_BETTER = {"log_loss", "rmse", "mae", "demographic_parity_difference", "equalized_odds_difference"}


@dataclass(frozen=True)
class Comparison:
    """Runs side by side, one column each (named by version), so a few runs fit the page without scrolling."""

    metrics: pd.DataFrame  # index: metric; a column per run, then "best" (the run that does best on it)
    params: pd.DataFrame  # index: setting or hyperparameter; a column per run, then "comparison": same/different


def comparison(run_ids: tuple[int, ...]) -> Comparison:
    return compare_runs([run_detail(r) for r in run_ids])


def compare_runs(details: list[RunDetail]) -> Comparison:
    """The metrics and the parameter diff of ``details`` (pure: unit-tested without a page)."""
    heads = [names.version_label(r.model_name, r.model_version) if r.model_version is not None
             else f"{r.model_name} run {r.id}" for r in details]
    metric_names = list(dict.fromkeys(m for r in details for m, v in r.metrics.items() if isinstance(v, int | float)))
    metrics = pd.DataFrame({h: [r.metrics.get(m) for m in metric_names] for h, r in zip(heads, details, strict=True)},
                           index=pd.Index(metric_names, name="metric"), dtype="float64")
    metrics["best"] = [_best(metrics.loc[m, heads].abs() if m.endswith("_difference") else metrics.loc[m, heads],
                             lower=m in LOWER_IS_BETTER) for m in metric_names]  # a difference is best near 0

    def settings(r: RunDetail) -> dict[str, str]:
        fixed = {"model kind": names.kind_label(r.model_kind, r.task), "dataset": r.dataset_ref, "target": r.target,
                 "seed": str(r.seed), "holdout": _cell(r.spec.get("holdout")),
                 "excluded columns": ", ".join(r.spec.get("exclude") or []) or "none",
                 "sensitive column": _cell(r.spec.get("sensitive")) or "none",
                 "search": f"{r.search['method']}, {len(r.search['candidates'])} candidates" if r.search else "none"}
        return fixed | {p: _cell(v) for p, v in sorted(r.params.items())}

    each = [settings(r) for r in details]
    keys = list(dict.fromkeys(k for s in each for k in s))
    params = pd.DataFrame({h: [s.get(k, "not set") for k in keys] for h, s in zip(heads, each, strict=True)},
                          index=pd.Index(keys, name="parameter"))
    params["comparison"] = ["same" if params.loc[k, heads].nunique() == 1 else "different" for k in keys]
    return Comparison(metrics=metrics, params=params)


def _best(values: pd.Series, *, lower: bool) -> str:
    known = values.dropna()
    if len(known) < 2:  # one run's value beats nothing
        return ""
    top = known.min() if lower else known.max()
    winners = [str(h) for h, v in known.items() if v == top]
    return "all equal" if len(winners) == len(values) else ", ".join(winners)
