"""The stored gate evaluations of model versions: the ``gate_evaluations`` table's writer and readers.

Promotion evaluates the gates (``core/promotion/gates.py``) and stores each result here; the registry's
views and the compliance report read them back. The table is the registry's because the registry is
the earlier stage: promotion may call these functions, the registry could not call promotion's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import GateEvaluation


def record(session: Session, *, model: str, version: int, context: str, passed: bool,
           checks: dict[str, Any]) -> GateEvaluation:
    """Store one evaluation of ``model`` v``version``'s gates (``context``: registration, approval, promotion)."""
    row = GateEvaluation(model=model, version=version, context=context, passed=passed, checks=checks)
    session.add(row)
    session.flush()
    return row


def history(session: Session, *, model: str, version: int) -> list[GateEvaluation]:
    """Every evaluation of ``model`` v``version``, oldest first."""
    return list(session.scalars(select(GateEvaluation).where(
        GateEvaluation.model == model, GateEvaluation.version == version).order_by(GateEvaluation.id)))


def latest_per_version(session: Session, *, model: str) -> dict[int, GateEvaluation]:
    """The newest evaluation of each version of ``model`` (version → evaluation)."""
    newest = (select(GateEvaluation.version, func.max(GateEvaluation.id).label("id"))
              .where(GateEvaluation.model == model).group_by(GateEvaluation.version).subquery())
    rows = session.scalars(select(GateEvaluation).join(newest, GateEvaluation.id == newest.c.id))
    return {g.version: g for g in rows}
