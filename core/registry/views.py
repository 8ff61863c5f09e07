"""Read models of the registry for pages, the CLI and reports: models, versions, lineage, timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.data import datasets
from core.errors import NotFound
from core.registry import gate_records, state
from core.registry.state import CHALLENGER, CHAMPION
from core.training import runs


@dataclass(frozen=True)
class VersionFacts:
    """What the gates look at for one model version (from its training run and dataset version)."""

    model: str
    version: int
    task: str
    metrics: dict[str, float]
    fairness: dict[str, Any]
    certificate_passed: bool | None
    certificate_at: datetime | None
    trainer: str


def version_facts(session: Session, *, model: str, version: int) -> VersionFacts:
    """The gate inputs of a version LeanOps trained: its run's metrics and its data's certificate."""
    run = runs.row_for_version(session, model=model, version=version)
    if run is None:
        raise NotFound(f"{model} v{version} has no LeanOps training run (was it registered outside LeanOps?)")
    data = datasets.version_by_id(session, version_id=run.dataset_version_id) if run.dataset_version_id else None
    return VersionFacts(model=model, version=version, task=run.task, metrics=run.metrics or {},
                        fairness=run.fairness or {},
                        certificate_passed=data.certificate_passed if data else None,
                        certificate_at=data.certificate_at if data else None, trainer=run.created_by)


@dataclass(frozen=True)
class ModelRow:
    name: str
    champion: int | None
    challenger: int | None
    versions: int
    last_trained: datetime | None
    task: str


@dataclass(frozen=True)
class VersionRow:
    version: int
    run_id: int
    mlflow_run_id: str | None
    created_by: str
    trained_at: datetime | None
    model_kind: str
    task: str
    dataset: str
    dataset_sha256: str
    primary_metric: str | None
    score: float | None
    metrics: dict[str, Any]
    gates_passed: bool | None
    gate_checks: list[dict[str, Any]]
    aliases: tuple[str, ...]


def list_models(session: Session) -> list[ModelRow]:
    out = []
    for name, count, last, task in runs.model_totals(session):
        found = state.current(session, model=name)
        out.append(ModelRow(name, found.get(CHAMPION), found.get(CHALLENGER), count, last, task))
    return out


def list_versions(session: Session, *, model: str) -> list[VersionRow]:
    rows = runs.version_rows(session, model=model)
    if not rows:
        raise NotFound(f"no versions of model {model!r}")
    latest = gate_records.latest_per_version(session, model=model)
    by_version: dict[int, list[str]] = {}
    for alias, version in state.current(session, model=model).items():
        by_version.setdefault(version, []).append(alias)
    return [VersionRow(version=r.model_version, run_id=r.id, mlflow_run_id=r.mlflow_run_id, created_by=r.created_by,
                       trained_at=r.finished_at, model_kind=r.model_kind, task=r.task,
                       dataset=f"{r.dataset_name}:{r.dataset_version}", dataset_sha256=r.dataset_sha256,
                       primary_metric=r.primary_metric, score=r.score, metrics=r.metrics or {},
                       gates_passed=latest[r.model_version].passed if r.model_version in latest else None,
                       gate_checks=latest[r.model_version].checks["checks"] if r.model_version in latest else [],
                       aliases=tuple(sorted(by_version.get(r.model_version, ()))))
            for r in rows if r.model_version is not None]  # always true (the query), for the type checker


@dataclass(frozen=True)
class ChampionPeriod:
    version: int
    start: datetime
    end: datetime | None  # None: still champion
    moved_by: str
    action: str
    reason: str
    forced: bool


def champion_periods(session: Session, *, model: str) -> list[ChampionPeriod]:
    """When each version was champion, from the alias history (oldest first)."""
    moves = state.history(session, model=model, alias=CHAMPION, limit=0, oldest_first=True)
    periods = []
    for i, move in enumerate(moves):
        if move.to_version is None:
            continue
        end = moves[i + 1].ts if i + 1 < len(moves) else None
        periods.append(ChampionPeriod(move.to_version, move.ts, end, move.actor, move.action, move.reason,
                                      move.forced))
    return periods
