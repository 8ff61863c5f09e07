"""The record of batch scoring runs (table ``batch_runs``): its one owner. Readers for the pages, the API's
download and the compliance report; writers for the scoring flow (``core.serving.batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from db.models import BatchRun, utcnow


@dataclass(frozen=True)
class BatchRunView:
    id: str
    model: str
    version: int
    alias: str | None
    source: str
    out: str
    id_column: str | None
    explain: bool
    status: str
    rows: int
    output_sha256: str | None
    error: str | None
    job_id: int | None
    schedule: str | None
    created_by: str
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _view(row: BatchRun) -> BatchRunView:
    return BatchRunView(**{f: getattr(row, f) for f in BatchRunView.__dataclass_fields__})


def start(session: Session, *, batch_id: str, model: str, version: int, alias: str | None, source: str, out: str,
          id_column: str | None, explain: bool, created_by: str, started_at: datetime, job_id: int | None = None,
          schedule: str | None = None) -> None:
    session.add(BatchRun(id=batch_id, model=model, version=version, alias=alias, source=source[:2000],
                         out=out[:2000], id_column=id_column, explain=explain, status="running", rows=0,
                         job_id=job_id, schedule=schedule, created_by=created_by[:128], started_at=started_at))
    session.flush()


def finish(session: Session, *, batch_id: str, status: str, rows: int = 0, output_sha256: str | None = None,
           error: str | None = None, seconds: float | None = None) -> None:
    row = session.get(BatchRun, batch_id)
    if row is None:
        raise NotFound(f"no batch run {batch_id!r}")
    row.status, row.rows, row.output_sha256, row.error = status, rows, output_sha256, (error or None) and error[:4000]
    row.finished_at, row.seconds = utcnow(), seconds


def get(session: Session, *, batch_id: str) -> BatchRunView:
    row = session.get(BatchRun, batch_id)
    if row is None:
        raise NotFound(f"no batch run {batch_id!r}")
    return _view(row)


def of_job(session: Session, *, job_id: int) -> BatchRunView | None:
    row = session.scalar(select(BatchRun).where(BatchRun.job_id == job_id).order_by(desc(BatchRun.started_at)))
    return _view(row) if row is not None else None


def of_model(session: Session, *, model: str, version: int | None = None, limit: int = 100) -> list[BatchRunView]:
    """The newest batch runs of ``model`` (of its ``version``), newest first."""
    query = select(BatchRun).where(BatchRun.model == model).order_by(desc(BatchRun.started_at)).limit(limit)
    if version is not None:
        query = query.where(BatchRun.version == version)
    return [_view(r) for r in session.scalars(query)]
