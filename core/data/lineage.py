"""Lineage between data and models: which training runs used which dataset version.

Training calls ``link_run`` when it starts a run on a version (and again once the model version
is known); the Datasets page lists ``runs_for`` each version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.data.datasets import resolve
from db.models import DatasetRun


@dataclass(frozen=True)
class RunLink:
    ref: str
    run_id: str
    model_name: str | None
    model_version: int | None
    created_by: str
    created_at: datetime


def link_run(session: Session, *, actor: Actor, ref: str, run_id: str, model_name: str | None = None,
             model_version: int | None = None) -> RunLink:
    """Record that training run ``run_id`` used dataset version ``ref`` ("NAME:VERSION").

    Idempotent: calling it again for the same run fills in the model name and version.
    """
    require(session, actor, "training.launch", f"dataset:{ref}")
    version = resolve(session, ref=ref)
    link = session.scalar(select(DatasetRun).where(DatasetRun.dataset_version_id == version.id,
                                                   DatasetRun.run_id == run_id))
    new = link is None
    if link is None:
        link = DatasetRun(dataset_version_id=version.id, run_id=run_id, created_by=actor.name)
        session.add(link)
    link.model_name = model_name or link.model_name
    link.model_version = model_version or link.model_version
    session.flush()
    if new:
        audit.record(session, actor, "dataset.run_linked", f"dataset:{version.name}",
                     {"ref": version.ref, "sha256": version.sha256, "run_id": run_id})
    return _view(link, version.ref)


def runs_for(session: Session, *, ref: str) -> list[RunLink]:
    """The training runs linked to one version, newest first."""
    version = resolve(session, ref=ref)
    links = session.scalars(select(DatasetRun).where(DatasetRun.dataset_version_id == version.id)
                            .order_by(desc(DatasetRun.id)))
    return [_view(link, version.ref) for link in links]


def _view(link: DatasetRun, ref: str) -> RunLink:
    return RunLink(ref=ref, run_id=link.run_id, model_name=link.model_name, model_version=link.model_version,
                   created_by=link.created_by, created_at=link.created_at)
