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
from sqlalchemy.orm import Session, sessionmaker

from core import aliases, audit, locks, policy
from core.auth import require
from core.auth_types import Actor
from core.errors import InvalidInput, NotFound, PolicyBlocked
from db.models import AliasMove, Approval, GateEvaluation, PromotionRequest, utcnow
from db.session import transaction

log = logging.getLogger("leanops.promotion")

CHAMPION, CHALLENGER = "champion", "challenger"


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
class AliasChange:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    forced: bool
    checks: dict[str, Any] | None
    action: str = ""
    actor: str = ""
    reason: str = ""


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


def _move(session: Session, *, registry: Registry, actor: Actor, model: str, alias: str, to: int | None,
          action: str, reason: str, forced: bool = False, checks: dict[str, Any] | None = None) -> AliasChange:
    current = aliases.get(registry.mlflow_uri, model=model, alias=alias)
    session.add(AliasMove(model=model, alias=alias, from_version=current, to_version=to, action=action,
                          actor=actor.name, reason=reason, forced=forced, checks=checks))
    audit.record(session, actor, f"model.{action}", f"model:{model}",
                 {"alias": alias, "from": current, "to": to, "reason": reason, "forced": forced,
                  "checks": checks})
    session.flush()
    aliases.move(registry.mlflow_uri, model=model, alias=alias, version=to)
    return AliasChange(model, alias, current, to, forced, checks, action, actor.name, reason)


def undo(registry: Registry, change: AliasChange) -> None:
    """Put an alias back where it was (the commit after a move failed)."""
    aliases.move(registry.mlflow_uri, model=change.model, alias=change.alias, version=change.from_version)


def promote(session: Session, *, registry: Registry, actor: Actor, model: str, version: int, reason: str = "",
            force: bool = False) -> AliasChange:
    """Move ``champion`` to ``version`` if every gate passes; refuse (GatesFailed) otherwise.

    ``force`` (admin only, reason required) promotes despite failed gates and is flagged.
    """
    require(session, actor, "models.force_promote" if force else "models.promote", f"model:{model}")
    if force and not reason.strip():
        raise InvalidInput("a forced promotion needs a reason")
    aliases.check_version(registry.mlflow_uri, model=model, version=version)
    if aliases.get(registry.mlflow_uri, model=model, alias=CHAMPION) == version:
        raise InvalidInput(f"{model} v{version} is already the champion")
    # Checked before taking the lock (a refusal waits for nobody), and again under the lock,
    # since the champion the improvement gate compares with may have moved meanwhile.
    result = check_gates(session, registry=registry, model=model, version=version)
    if not result.passed and not force:
        _refuse(actor, model, version, result)
    locks.hold(session, f"model:{model}")
    if aliases.get(registry.mlflow_uri, model=model, alias=CHAMPION) == version:
        raise InvalidInput(f"{model} v{version} became the champion meanwhile")
    result = evaluate_gates(session, registry=registry, model=model, version=version, context="promotion")
    if not result.passed and not force:
        raise GatesFailed(_blocked_message(model, version, result), result)
    change = _move(session, registry=registry, actor=actor, model=model, alias=CHAMPION, to=version,
                   action="force_promote" if force and not result.passed else "promote", reason=reason,
                   forced=force and not result.passed, checks=result.as_dict())
    if aliases.get(registry.mlflow_uri, model=model, alias=CHALLENGER) == version:
        aliases.move(registry.mlflow_uri, model=model, alias=CHALLENGER, version=None)
    request = _open_request(session, model, version)
    if request is not None:
        request.status, request.decided_at = "promoted", utcnow()
    return change


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


def rollback(session: Session, *, registry: Registry, actor: Actor, model: str, reason: str = "") -> AliasChange:
    """Move ``champion`` back to the version that was champion before the current one."""
    require(session, actor, "models.rollback", f"model:{model}")
    locks.hold(session, f"model:{model}")
    current = aliases.get(registry.mlflow_uri, model=model, alias=CHAMPION)
    if current is None:
        raise InvalidInput(f"{model} has no champion to roll back")
    arrived = session.scalar(select(AliasMove).where(
        AliasMove.model == model, AliasMove.alias == CHAMPION, AliasMove.to_version == current)
        .order_by(desc(AliasMove.id)))
    previous = arrived.from_version if arrived is not None else None
    if previous is None:
        raise InvalidInput(f"{model} v{current} has no previous champion to roll back to")
    return _move(session, registry=registry, actor=actor, model=model, alias=CHAMPION, to=previous,
                 action="rollback", reason=reason or f"rolled back from v{current}")


def set_challenger(session: Session, *, registry: Registry, actor: Actor, model: str, version: int,
                   reason: str) -> AliasChange:
    """Give a newly registered version that passed its gates the ``challenger`` alias."""
    require(session, actor, "training.launch", f"model:{model}")
    locks.hold(session, f"model:{model}")
    return _move(session, registry=registry, actor=actor, model=model, alias=CHALLENGER, to=version,
                 action="challenger", reason=reason)


# -- approvals -----------------------------------------------------------------------------------

def request_promotion(session: Session, *, actor: Actor, model: str, version: int, reason: str = ""
                      ) -> PromotionRequest:
    require(session, actor, "models.request_promotion", f"model:{model}")
    if _open_request(session, model, version) is not None:
        raise InvalidInput(f"{model} v{version} already has an open promotion request")
    request = PromotionRequest(model=model, version=version, requested_by=actor.name, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, actor, "model.promotion_requested", f"model:{model}",
                 {"version": version, "request": request.id, "reason": reason})
    return request


def decide(session: Session, *, registry: Registry, actor: Actor, request_id: int, approve: bool,
           comment: str = "") -> AliasChange | None:
    """An approver approves or rejects a request; the approval that completes the gates promotes."""
    request = session.get(PromotionRequest, request_id)
    if request is None:
        raise NotFound(f"no promotion request {request_id}")
    require(session, actor, "models.approve", f"model:{request.model}")
    if request.status != "pending":
        raise InvalidInput(f"request {request_id} is already {request.status}")
    trainer = registry.facts(session, request.model, request.version).trainer
    if approve and actor.name == trainer:
        raise InvalidInput(f"{actor.name} trained {request.model} v{request.version} and cannot approve it")
    if session.scalar(select(Approval.id).where(Approval.request_id == request_id, Approval.approver == actor.name)):
        raise InvalidInput(f"{actor.name} already decided on request {request_id}")
    session.add(Approval(request_id=request_id, approver=actor.name, decision="approve" if approve else "reject",
                         comment=comment))
    session.flush()
    audit.record(session, actor, "model.approved" if approve else "model.rejected", f"model:{request.model}",
                 {"version": request.version, "request": request_id, "comment": comment})
    if not approve:
        request.status, request.decided_at = "rejected", utcnow()
        return None
    result = evaluate_gates(session, registry=registry, model=request.model, version=request.version,
                            context="approval")
    if not result.passed:
        only_approvals_missing = all(c.name == "approvals" for c in result.failed())
        if only_approvals_missing:
            return None  # more approvals needed; the request stays pending
        raise GatesFailed(f"{request.model} v{request.version} is approved but other gates fail: "
                          + "; ".join(c.name for c in result.failed() if c.name != "approvals"), result)
    request.status = "approved"
    return promote(session, registry=registry, actor=actor, model=request.model, version=request.version,
                   reason=f"approved request {request_id}" + (f": {comment}" if comment else ""))


def commit_or_undo(factory: sessionmaker[Session], registry: Registry,
                   move: Callable[[Session], AliasChange | None]) -> AliasChange | None:
    """Run an alias-moving operation as one unit: if the DB commit fails after MLflow's alias
    moved, move it back, so MLflow, the history and the audit log never disagree."""
    change = None
    try:
        with transaction(factory) as session:
            change = move(session)
    except Exception:
        if change is not None:
            undo(registry, change)
        raise
    if change is not None and change.alias == CHAMPION:
        _alert(factory, registry, change)
        _sync_schedules(factory, registry)
    return change


def _sync_schedules(factory: sessionmaker[Session], registry: Registry) -> None:
    """A new champion gets its drift/retrain schedules (after the commit; the monitor job catches up on failure)."""
    from core import retrain

    try:
        with transaction(factory) as session:
            retrain.sync_model_schedules(session, registry)
    except Exception:  # noqa: BLE001 - the promotion stands; the 15-minute monitor job syncs again
        log.exception("could not sync the model schedules after a promotion")


def _alert(factory: sessionmaker[Session], registry: Registry, change: AliasChange) -> None:
    """A promotion or rollback alert, after the commit (never raises)."""
    from core import alerts

    rollback = change.action == "rollback"
    was = f"v{change.from_version}" if change.from_version is not None else "none"
    verb = "rolled back" if rollback else "force-promoted" if change.forced else "promoted"
    alerts.notify(factory, alerts.settings_for(registry.home), condition="rollback" if rollback else "promotion",
                  model=change.model, severity="warning" if rollback or change.forced else "info",
                  title=f"{change.model}: champion {verb} {was} → v{change.to_version}",
                  message=f"{change.actor} {verb} {change.model}: champion is now v{change.to_version} "
                          f"(was {was}). Reason: {change.reason or 'none given'}.",
                  details={"from_version": change.from_version, "to_version": change.to_version,
                           "actor": change.actor, "reason": change.reason, "forced": change.forced})


# -- reading -------------------------------------------------------------------------------------

def history(session: Session, *, model: str, alias: str | None = CHAMPION, limit: int = 200) -> list[AliasMove]:
    query = select(AliasMove).where(AliasMove.model == model).order_by(desc(AliasMove.id)).limit(limit)
    if alias:
        query = query.where(AliasMove.alias == alias)
    return list(session.scalars(query))


def pending_requests(session: Session, *, model: str | None = None) -> list[PromotionRequest]:
    query = select(PromotionRequest).where(PromotionRequest.status == "pending").order_by(PromotionRequest.id)
    if model:
        query = query.where(PromotionRequest.model == model)
    return list(session.scalars(query))


def latest_gates(session: Session, *, model: str, version: int) -> GateEvaluation | None:
    return session.scalar(select(GateEvaluation).where(GateEvaluation.model == model, GateEvaluation.version == version)
                          .order_by(desc(GateEvaluation.id)))


