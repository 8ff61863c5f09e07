"""Promotion behind policy gates, approvals, forced promotion and rollback of the champion alias.

The alias move in MLflow, the history row and the audit event succeed or fail together: the
model's lock row is held for the whole transaction, the DB rows are flushed first, the MLflow
alias is moved last, and if the commit then fails the caller's ``undo`` puts the alias back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from core import audit, policy
from core.actors import Actor
from core.errors import PolicyBlocked
from core.platform import aliases
from core.platform.aliases import CHAMPION
from db.models import Approval, GateEvaluation, PromotionRequest, utcnow

log = logging.getLogger("leanops.promotion")


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


FactsReader = Callable[[Session, str, int], VersionFacts]


class GatesFailed(PolicyBlocked):
    def __init__(self, message: str, result: policy.GateResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Registry:
    """Where promotion finds things: the MLflow URI, the workspace (policies.yaml), version facts."""

    mlflow_uri: str
    home: Path
    facts: FactsReader


def check_gates(session: Session, *, registry: Registry, model: str, version: int,
                now: datetime | None = None) -> policy.GateResult:
    """Every gate for ``model`` v``version`` as things stand now (reads only)."""
    facts = registry.facts(session, model, version)
    rules = policy.for_model(policy.load(registry.home), model)
    champion = aliases.get(registry.mlflow_uri, model=model, alias=CHAMPION)
    champion_metrics = registry.facts(session, model, champion).metrics if champion not in (None, version) else None
    return policy.evaluate(rules, task=facts.task, metrics=facts.metrics, champion_metrics=champion_metrics,
                           fairness=facts.fairness, certificate_passed=facts.certificate_passed,
                           certificate_at=facts.certificate_at, now=now or utcnow(), trainer=facts.trainer,
                           approvals=_approvals(session, model, version))


def evaluate_gates(session: Session, *, registry: Registry, model: str, version: int, context: str
                   ) -> policy.GateResult:
    """check_gates, stored with the version (registration, approval, promotion)."""
    result = check_gates(session, registry=registry, model=model, version=version)
    session.add(GateEvaluation(model=model, version=version, context=context, passed=result.passed,
                               checks=result.as_dict()))
    session.flush()
    return result


def _approvals(session: Session, model: str, version: int) -> tuple[str, ...]:
    request = _open_request(session, model, version)
    if request is None:
        return ()
    return tuple(session.scalars(select(Approval.approver).where(
        Approval.request_id == request.id, Approval.decision == "approve")))


def _open_request(session: Session, model: str, version: int) -> PromotionRequest | None:
    return session.scalar(select(PromotionRequest).where(
        PromotionRequest.model == model, PromotionRequest.version == version,
        PromotionRequest.status.in_(("pending", "approved"))).order_by(desc(PromotionRequest.id)))


def _blocked_message(model: str, version: int, result: policy.GateResult) -> str:
    failing = "; ".join(f"{c.name}: {c.observed} (needs {c.required})" for c in result.failed())
    return f"{model} v{version} cannot be promoted: {failing}"


def _refuse(actor: Actor, model: str, version: int, result: policy.GateResult) -> None:
    """Raise GatesFailed; the attempt and its gates are recorded once the caller has rolled back."""
    blocked = GatesFailed(_blocked_message(model, version, result), result)

    def record(own: Session) -> None:
        audit.record(own, actor, "model.promotion_blocked", f"model:{model}",
                     {"version": version, "failed": [c.name for c in result.failed()]})
        own.add(GateEvaluation(model=model, version=version, context="promotion", passed=False,
                               checks=result.as_dict()))

    blocked.after_rollback.append(record)
    raise blocked


def latest_gates(session: Session, *, model: str, version: int) -> GateEvaluation | None:
    return session.scalar(select(GateEvaluation).where(GateEvaluation.model == model, GateEvaluation.version == version)
                          .order_by(desc(GateEvaluation.id)))
