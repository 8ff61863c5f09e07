"""Promotion requests and approvals: a scientist asks, approvers other than the trainer decide.

The approval that completes the gates promotes the version in the same unit as the approval itself
(``moves.run_move``): the approval row, the alias move and their audit events commit together.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.auth import require
from core.errors import InvalidInput, NotFound
from core.platform import aliases
from core.promotion.gates import GatesFailed, evaluate_gates, open_request
from core.promotion.moves import AliasChange, promote_in, run_move
from core.registry.views import version_facts
from core.settings import Settings
from db.models import Approval, PromotionRequest, utcnow


def request_promotion(session: Session, *, actor: Actor, model: str, version: int, reason: str = ""
                      ) -> PromotionRequest:
    require(session, actor, "models.request_promotion", f"model:{model}")
    if open_request(session, model, version) is not None:
        raise InvalidInput(f"{model} v{version} already has an open promotion request")
    request = PromotionRequest(model=model, version=version, requested_by=actor.name, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, actor, "model.promotion_requested", f"model:{model}",
                 {"version": version, "request": request.id, "reason": reason})
    return request


def decide(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, request_id: int, approve: bool,
           comment: str = "") -> AliasChange | None:
    """An approver approves or rejects a request; the approval that completes the gates promotes."""
    return run_move(factory, settings, lambda session: _decide(
        session, settings, actor=actor, request_id=request_id, approve=approve, comment=comment))


def _decide(session: Session, settings: Settings, *, actor: Actor, request_id: int, approve: bool,
            comment: str) -> AliasChange | None:
    request = session.get(PromotionRequest, request_id)
    if request is None:
        raise NotFound(f"no promotion request {request_id}")
    require(session, actor, "models.approve", f"model:{request.model}")
    if request.status != "pending":
        raise InvalidInput(f"request {request_id} is already {request.status}")
    facts = version_facts(session, model=request.model, version=request.version)
    trainer = facts.trainer
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
    champion = aliases.get(settings.mlflow_uri, model=request.model, alias=aliases.CHAMPION)
    result = evaluate_gates(session, settings, model=request.model, version=request.version, champion=champion,
                            context="approval", facts=facts)
    if not result.passed:
        only_approvals_missing = all(c.name == "approvals" for c in result.failed())
        if only_approvals_missing:
            return None  # more approvals needed; the request stays pending
        raise GatesFailed(f"{request.model} v{request.version} is approved but other gates fail: "
                          + "; ".join(c.name for c in result.failed() if c.name != "approvals"), result)
    request.status = "approved"
    return promote_in(session, settings, actor=actor, model=request.model, version=request.version,
                      reason=f"approved request {request_id}" + (f": {comment}" if comment else ""))


def pending_requests(session: Session, *, model: str | None = None) -> list[PromotionRequest]:
    query = select(PromotionRequest).where(PromotionRequest.status == "pending").order_by(PromotionRequest.id)
    if model:
        query = query.where(PromotionRequest.model == model)
    return list(session.scalars(query))
