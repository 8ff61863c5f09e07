"""Training runs in the metadata DB: recording them, listing them (paged in SQL), reading one back.

A run row is written when its job starts (``running``) and completed with the ``model.trained``
audit event and the dataset lineage link in one transaction (with the version's gates: see
``core.training.workflow``). A run whose worker was killed keeps ``running`` until the reaper's
clean-up (or ``reconcile``) fails it; lists show the job's verdict meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, case, desc, func, select, update
from sqlalchemy.orm import Session, undefer

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.data import lineage
from core.errors import InvalidInput, NotFound
from core.platform import job_queue
from core.training.spec import TrainingSpec, parse_spec
from db.models import Job, TrainingRun, utcnow

STATUSES = ("running", "succeeded", "failed", "cancelled")
ORDERS = ("newest", "best")  # the run list's order: by id, or by the primary metric (higher is better: f1, r2)
PRIMARY = {"classification": "f1", "regression": "r2"}

# A run row left "running" by a killed worker shows its job's final status.
EFFECTIVE_STATUS = case(
    (and_(TrainingRun.status == "running", Job.status.in_(job_queue.FINISHED)), Job.status),
    else_=TrainingRun.status,
)


@dataclass(frozen=True)
class RunSummary:
    """One row of the run list."""

    id: int
    job_id: int | None
    dataset_name: str
    dataset_version: int
    model_name: str
    model_version: int | None
    model_kind: str
    task: str
    target: str
    status: str
    primary_metric: str | None
    score: float | None
    metrics: dict[str, Any]
    params: dict[str, Any]  # the fitted hyperparameters (the run list shows them as columns, like MLflow's)
    error: str | None
    created_by: str
    started_at: datetime
    finished_at: datetime | None
    mlflow_run_id: str | None

    @property
    def dataset_ref(self) -> str:
        return f"{self.dataset_name}:{self.dataset_version}"


@dataclass(frozen=True)
class RunDetail(RunSummary):
    """Everything about one run, for its detail view, the registry and the compliance report."""

    dataset_version_id: int | None
    dataset_sha256: str
    mlflow_experiment_id: str | None
    model_uri: str | None
    sensitive: str | None
    spec: dict[str, Any]
    seed: int
    baseline: dict[str, Any]
    fairness: dict[str, Any]
    plots: dict[str, Any]
    search: dict[str, Any] | None
    code_version: str


def _summary(row: TrainingRun, status: str) -> RunSummary:
    names = [f.name for f in fields(RunSummary)]
    values = {n: getattr(row, n) for n in names if n != "status"}
    values["metrics"], values["params"] = row.metrics or {}, row.params or {}
    return RunSummary(**values, status=status)


def _detail(row: TrainingRun, status: str) -> RunDetail:
    base = _summary(row, status)
    extra = {f.name: getattr(row, f.name) for f in fields(RunDetail) if f.name not in base.__dataclass_fields__}
    extra |= {"baseline": row.baseline or {}, "fairness": row.fairness or {}, "plots": row.plots or {}}
    return RunDetail(**{f.name: getattr(base, f.name) for f in fields(RunSummary)}, **extra)


# -- writing -------------------------------------------------------------------------------------

def start(session: Session, *, job_id: int | None, spec: TrainingSpec, dataset_version_id: int, dataset_name: str,
          dataset_version: int, sha256: str, task: str, params: dict[str, Any], code_version: str,
          created_by: str) -> int:
    """The row of a run that is starting; returns its id."""
    row = TrainingRun(job_id=job_id, dataset_version_id=dataset_version_id, dataset_name=dataset_name,
                      dataset_version=dataset_version, dataset_sha256=sha256, model_name=spec.registered_name,
                      model_kind=spec.model, task=task, target=spec.target, sensitive=spec.sensitive, params=params,
                      spec=spec.as_dict(), seed=spec.seed, primary_metric=PRIMARY[task], status="running",
                      code_version=code_version, created_by=created_by)
    session.add(row)
    session.flush()
    return row.id


def note_mlflow(session: Session, *, run_id: int, mlflow_run_id: str, experiment_id: str | None) -> None:
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id)
                    .values(mlflow_run_id=mlflow_run_id, mlflow_experiment_id=experiment_id))


def complete(session: Session, *, run_id: int, actor: Actor, params: dict[str, Any], metrics: dict[str, float],
             baseline: dict[str, float], fairness: dict[str, Any], plots: dict[str, Any], reference: dict[str, Any],
             search: dict[str, Any] | None, model_version: int, model_uri: str) -> TrainingRun:
    """Mark the run succeeded with its results, audit ``model.trained`` and link the dataset version."""
    row = session.get(TrainingRun, run_id)
    if row is None:
        raise NotFound(f"no training run {run_id}")
    row.params, row.metrics, row.baseline, row.fairness = params, metrics, baseline, fairness
    row.plots, row.reference, row.search = plots, reference, search
    row.score = metrics.get(row.primary_metric or "")
    row.model_version, row.model_uri = model_version, model_uri
    row.status, row.finished_at, row.error = "succeeded", utcnow(), None
    ref = f"{row.dataset_name}:{row.dataset_version}"
    if row.mlflow_run_id:
        lineage.link_run(session, actor=actor, ref=ref, run_id=row.mlflow_run_id, model_name=row.model_name,
                         model_version=model_version)
    audit.record(session, actor, "model.trained", f"model:{row.model_name}", {
        "version": model_version, "training_run": row.id, "job_id": row.job_id, "mlflow_run_id": row.mlflow_run_id,
        "dataset": ref, "sha256": row.dataset_sha256, "model_kind": row.model_kind, "task": row.task,
        "params": params, "seed": row.seed, "metrics": metrics, "code_version": row.code_version})
    session.flush()
    return row


def fail(session: Session, *, run_id: int, status: str, error: str) -> None:
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
                    .values(status=status, error=error[:2000], finished_at=utcnow(), model_version=None))


def reconcile(session: Session, *, job_id: int | None = None) -> list[TrainingRun]:
    """Runs still ``running`` whose job has ended (a killed worker): fail them with the job's reason.

    ``job_id`` limits it to that job's runs (the reaper's clean-up, once their MLflow side is tidied).
    """
    query = (select(TrainingRun).join(Job, Job.id == TrainingRun.job_id)
             .where(TrainingRun.status == "running", Job.status.in_(job_queue.FINISHED)))
    if job_id is not None:
        query = query.where(TrainingRun.job_id == job_id)
    rows = list(session.scalars(query))
    for row in rows:
        assert row.job_id is not None  # joined above
        job = job_queue.get(session, row.job_id)
        row.status = "cancelled" if job.status == "cancelled" else "failed"
        row.error = job.error or f"job {job.id} ended {job.status} before the run finished"
        row.finished_at = job.finished_at or utcnow()
        row.model_version = None
    return rows


# -- reading -------------------------------------------------------------------------------------

def _filtered(query: Any, *, dataset: str | None, model: str | None, kind: str | None, status: str | None) -> Any:
    if dataset:
        query = query.where(TrainingRun.dataset_name == dataset)
    if model:
        query = query.where(TrainingRun.model_name == model)
    if kind:
        query = query.where(TrainingRun.model_kind == kind)
    if status:
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r} is unknown; statuses are: {', '.join(STATUSES)}")
        query = query.where(EFFECTIVE_STATUS == status)
    return query


def list_runs(session: Session, *, dataset: str | None = None, model: str | None = None, kind: str | None = None,
              status: str | None = None, order: str = "newest", limit: int = 25,
              offset: int = 0) -> list[RunSummary]:
    """One page, newest first or best score first (ordered, limited and offset in SQL, so "best" ranks every
    run, not only one page); the heavy JSON columns stay unloaded."""
    if order not in ORDERS:
        raise InvalidInput(f"order {order!r} is unknown; orders are: {', '.join(ORDERS)}")
    by = (desc(TrainingRun.id),) if order == "newest" else (TrainingRun.score.is_(None), desc(TrainingRun.score),
                                                             desc(TrainingRun.id))
    query = (select(TrainingRun, EFFECTIVE_STATUS).outerjoin(Job, Job.id == TrainingRun.job_id)
             .order_by(*by).limit(limit).offset(offset))
    query = _filtered(query, dataset=dataset, model=model, kind=kind, status=status)
    return [_summary(row, st) for row, st in session.execute(query)]


def count_runs(session: Session, *, dataset: str | None = None, model: str | None = None, kind: str | None = None,
               status: str | None = None) -> int:
    query = select(func.count()).select_from(TrainingRun).outerjoin(Job, Job.id == TrainingRun.job_id)
    return session.scalar(_filtered(query, dataset=dataset, model=model, kind=kind, status=status)) or 0


def filter_values(session: Session) -> dict[str, list[str]]:
    """The distinct datasets, model names and kinds the run list can be filtered by."""
    def distinct(column: Any) -> list[str]:
        return list(session.scalars(select(column).distinct().order_by(column)))

    return {"dataset": distinct(TrainingRun.dataset_name), "model": distinct(TrainingRun.model_name),
            "kind": distinct(TrainingRun.model_kind)}


def _one(session: Session, where: Any) -> RunDetail | None:
    found = session.execute(
        select(TrainingRun, EFFECTIVE_STATUS).outerjoin(Job, Job.id == TrainingRun.job_id).where(where)
        .options(undefer(TrainingRun.plots), undefer(TrainingRun.spec), undefer(TrainingRun.search))
        .order_by(desc(TrainingRun.id)).limit(1)).first()
    return _detail(*found) if found else None


def get_run(session: Session, run_id: int) -> RunDetail:
    found = _one(session, TrainingRun.id == run_id)
    if found is None:
        raise NotFound(f"no training run {run_id}")
    return found


def for_job(session: Session, job_id: int) -> RunDetail | None:
    return _one(session, TrainingRun.job_id == job_id)


def row_for_version(session: Session, *, model: str, version: int, load: tuple[Any, ...] = ()) -> TrainingRun | None:
    """The training run that registered ``model`` v``version`` (None for a version made outside LeanOps).

    The one query for "the run of a version"; ``load`` names deferred columns to fetch with it.
    """
    return session.scalar(select(TrainingRun)
                          .where(TrainingRun.model_name == model, TrainingRun.model_version == version)
                          .options(*(undefer(column) for column in load)).order_by(desc(TrainingRun.id)).limit(1))


def task_of(session: Session, *, model: str) -> str | None:
    """The task of ``model`` as its first registered version's training run recorded it (a model keeps it)."""
    return session.scalar(select(TrainingRun.task).where(TrainingRun.model_name == model,
                                                         TrainingRun.model_version.is_not(None))
                          .order_by(TrainingRun.model_version).limit(1))


def registered_models(session: Session) -> list[str]:
    """Every model LeanOps registered a version of."""
    return list(session.scalars(select(TrainingRun.model_name).where(TrainingRun.model_version.is_not(None))
                                .distinct().order_by(TrainingRun.model_name)))


def versions_of(session: Session, *, model: str) -> list[int]:
    """The version numbers LeanOps registered of ``model``, oldest first."""
    return [v for v in session.scalars(select(TrainingRun.model_version).where(
        TrainingRun.model_name == model, TrainingRun.model_version.is_not(None))
        .order_by(TrainingRun.model_version)) if v is not None]  # all of them (the query), for the type checker


def version_rows(session: Session, *, model: str) -> list[TrainingRun]:
    """The runs that registered a version of ``model``, newest version first."""
    return list(session.scalars(select(TrainingRun).where(TrainingRun.model_name == model,
                                                          TrainingRun.model_version.is_not(None))
                                .order_by(desc(TrainingRun.model_version))))


class ModelTotals(NamedTuple):
    name: str
    versions: int
    last_trained: datetime | None
    task: str


def model_totals(session: Session) -> list[ModelTotals]:
    """Per registered model, by name: how many versions, when the last run finished, and its task."""
    rows = session.execute(
        select(TrainingRun.model_name, func.count(TrainingRun.model_version), func.max(TrainingRun.finished_at),
               func.max(TrainingRun.task))
        .where(TrainingRun.model_version.is_not(None)).group_by(TrainingRun.model_name)
        .order_by(TrainingRun.model_name)).all()
    return [ModelTotals(*row) for row in rows]


def trained_on(session: Session, *, model: str, dataset: str, version: int) -> bool:
    """Whether some run of ``model`` (finished or not) trained on ``dataset`` v``version``."""
    return session.scalar(select(TrainingRun.id).where(TrainingRun.model_name == model,
                                                       TrainingRun.dataset_name == dataset,
                                                       TrainingRun.dataset_version == version).limit(1)) is not None


def reference_for(session: Session, *, model: str, version: int) -> dict[str, Any]:
    """The reference statistics stored with a model version (for drift monitoring)."""
    row = row_for_version(session, model=model, version=version, load=(TrainingRun.reference,))
    if row is None or not row.reference:
        raise NotFound(f"no reference statistics for {model} version {version}")
    return row.reference


def reproduce(session: Session, *, actor: Actor, run_id: int) -> Job:
    """Queue the same spec again: same dataset version, parameters and seed (so the same metrics)."""
    require(session, actor, "training.launch", f"training_run:{run_id}")
    row = session.get(TrainingRun, run_id)
    if row is None:
        raise NotFound(f"no training run {run_id}")
    spec = parse_spec(row.spec | {"dataset": f"{row.dataset_name}:{row.dataset_version}", "params": row.params,
                                  "task": row.task, "search": None, "reproduces": run_id})
    return job_queue.enqueue(session, actor=actor, kind="train", params=spec.as_dict())
