"""Cached read queries of the Datasets page: DataFrames and frozen dataclasses, never ORM objects.

A version never changes once registered, so its certificate, profile and diffs are cached for
long; lists are cached briefly. ``ui.components.act`` clears every cache after a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from core import secrets
from core.data import datasets, lineage, schemas, sources
from core.data.profile import VersionDiff
from ui import resources

VERSION_COLUMNS = ["version", "description", "sha256", "rows", "columns", "certificate", "source", "created by",
                   "created at"]


def _session() -> Session:
    return resources.session_factory()()


@st.cache_data(ttl=5)
def dataset_table() -> pd.DataFrame:
    with _session() as session:
        rows = datasets.list_datasets(session)
    return pd.DataFrame([{"dataset": d.name, "versions": d.versions, "latest rows": d.latest_rows,
                          "latest certificate": _mark(d.latest_passed), "updated": d.updated_at,
                          "description": d.description} for d in rows],
                        columns=["dataset", "versions", "latest rows", "latest certificate", "updated", "description"])


@dataclass(frozen=True)
class VersionsPage:
    total: int
    table: pd.DataFrame
    numbers: list[int]  # every version number, newest first (for pickers)


@st.cache_data(ttl=5)
def versions_page(name: str, page: int, size: int) -> VersionsPage:
    """One page of the versions table; the paging is done in SQL."""
    with _session() as session:
        total = datasets.count_versions(session, name=name)
        views = datasets.list_versions(session, name=name, limit=size, offset=(page - 1) * size)
    table = pd.DataFrame([{"version": v.version, "description": v.description,
                           "sha256": v.sha256[:12], "rows": v.rows, "columns": len(v.columns),
                           "certificate": _mark(v.certificate_passed), "source": v.source,
                           "created by": v.created_by, "created at": v.created_at} for v in views],
                         columns=VERSION_COLUMNS)
    return VersionsPage(total=total, table=table, numbers=list(range(total, 0, -1)))


@st.cache_data(ttl=3600)
def version(name: str, number: int) -> datasets.DatasetVersionView:
    with _session() as session:
        return datasets.resolve(session, ref=f"{name}:{number}")


@st.cache_data(ttl=3600)
def certificate(name: str, number: int) -> tuple[bool, Any, pd.DataFrame]:
    """(passed, checked at, checks table with failures first)."""
    with _session() as session:
        cert = datasets.get_certificate(session, ref=f"{name}:{number}")
    table = pd.DataFrame([{"result": "warning" if c.get("warning") and not c["passed"] else _mark(c["passed"]),
                           "check": c["check"], "column": c["column"] or "(table)", "observed": c["observed"],
                           "expected": c["expected"], "hint": c.get("hint") or ""} for c in cert.checks],
                         columns=["result", "check", "column", "observed", "expected", "hint"])
    table = table.sort_values("result", key=lambda s: s != "failed", kind="stable").reset_index(drop=True)
    return cert.passed, cert.at, table


@st.cache_data(ttl=3600)
def profile(name: str, number: int) -> dict[str, Any]:
    with _session() as session:
        return datasets.get_profile(session, ref=f"{name}:{number}")


@st.cache_data(ttl=3600)
def diff(name: str, a: int, b: int) -> VersionDiff:
    with _session() as session:
        return datasets.diff(session, name=name, a=a, b=b)


@st.cache_data(ttl=10)
def runs(name: str, number: int) -> pd.DataFrame:
    with _session() as session:
        links = lineage.runs_for(session, ref=f"{name}:{number}")
    return pd.DataFrame([{"run": r.run_id, "model": r.model_name, "model version": r.model_version,
                          "by": r.created_by, "at": r.created_at} for r in links],
                        columns=["run", "model", "model version", "by", "at"])


@st.cache_data(ttl=10)
def schema(name: str) -> schemas.SchemaView:
    with _session() as session:
        return schemas.current_schema(session, name=name)


@st.cache_data(ttl=30)
def source_list() -> list[sources.SourceView]:
    with _session() as session:
        return sources.list_sources(session, keys=secrets.keys_if_any(resources.settings()))


def _mark(passed: bool | None) -> str:
    """A verdict as a word (sortable, readable without an emoji font)."""
    return "—" if passed is None else ("passed" if passed else "failed")
