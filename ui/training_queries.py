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
from ui import resources

RUN_COLUMNS = ["run", "status", "dataset", "model", "version", "kind", "task", "score", "by", "started", "seconds"]


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
        view, frame = datasets.load_frame(session, store_root=settings.data_store, ref=f"{name}:{version}",
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
    table: pd.DataFrame
    ids: list[int]


@st.cache_data(ttl=3)
def runs_page(dataset: str | None, model: str | None, kind: str | None, status: str | None, page: int,
              size: int) -> RunsPage:
    """One page of the run list; the filtering, counting and paging happen in SQL."""
    filters = {"dataset": dataset, "model": model, "kind": kind, "status": status}
    with _session() as session:
        total = runs.count_runs(session, **filters)
        rows = runs.list_runs(session, **filters, limit=size, offset=(page - 1) * size)
    table = pd.DataFrame([{
        "run": r.id, "status": r.status, "dataset": r.dataset_ref, "model": r.model_name, "version": r.model_version,
        "kind": r.model_kind, "task": r.task,
        "score": f"{r.primary_metric} {r.score:.4f}" if r.score is not None else (r.error or "")[:80],
        "by": r.created_by, "started": r.started_at,
        "seconds": (r.finished_at - r.started_at).total_seconds() if r.finished_at else None,
    } for r in rows], columns=RUN_COLUMNS)
    return RunsPage(total=total, table=table, ids=[r.id for r in rows])


@st.cache_data(ttl=3)
def run_detail(run_id: int) -> RunDetail:
    with _session() as session:
        return runs.get_run(session, run_id)


def run_for_job(job_id: int) -> RunDetail | None:
    with _session() as session:
        return runs.for_job(session, job_id)


def compare_table(run_ids: tuple[int, ...]) -> pd.DataFrame:
    """One row per run: its settings and every holdout metric (for the compare view)."""
    rows = []
    for run_id in run_ids:
        r = run_detail(run_id)
        rows.append({"run": r.id, "dataset": r.dataset_ref, "model": f"{r.model_name} v{r.model_version}",
                     "kind": r.model_kind, "seed": r.seed, **{k: round(v, 4) for k, v in r.metrics.items()}})
    return pd.DataFrame(rows)
