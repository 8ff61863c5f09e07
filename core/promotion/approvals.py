"""Promotion and rollback requests and their approvals.

A scientist asks for a promotion and approvers other than the trainer decide: the approval that
completes the gates promotes the version in the same unit as the approval itself
(``moves.run_move``), so the approval row, the alias move and their audit events commit together.

The automatic rollback asks too when the policy says ``rollback.auto: approve`` (``request_rollback``):
one approver's approval rolls the champion back through ``moves.rollback_in`` in the same way. A
rollback request is a ``PromotionRequest`` row whose requester is ``gates.ROLLBACK_REQUESTER`` and
whose version is the champion it asks to roll back from (``kind_of`` tells the two kinds apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit, formats, policy
from core.accounts.auth import ownerless_token, person_behind, require
from core.actors import Actor
from core.errors import InvalidInput, LeanOpsError, NotFound, PermissionDenied
from core.platform import locks
from core.promotion.gates import ROLLBACK_REQUESTER, GatesFailed, check_gates, evaluate_gates, open_request
from core.promotion.moves import AliasChange, promote_in, rollback_in, run_move
from core.registry import state
from core.registry.views import version_facts
from core.settings import Settings
from db.models import Approval, PromotionRequest, utcnow


def request_promotion(session: Session, *, actor: Actor, model: str, version: int, reason: str = "",
                      settings: Settings | None = None) -> PromotionRequest:
    """Ask approvers to promote ``model`` v``version``. The caller commits.

    With ``settings`` (every entry passes them): a version whose gates fail, the approvals aside, is refused
    at once naming them (``GatesFailed``, the attempt audited) instead of failing only at Approve; and once
    the request commits, approvers are told through the alert channels (an ``approval`` event: no cooldown).
    """
    require(session, actor, "models.request_promotion", f"model:{model}")
    if open_request(session, model, version) is not None:
        raise InvalidInput(f"{model} v{version} already has an open promotion request")
    if settings is not None:
        champion = state.champion(session, model=model)
        result = check_gates(session, settings, model=model, version=version, champion=champion)
        failing = [c for c in result.failed() if c.name != "approvals"]
        if failing:
            _refuse_request(actor, model, version, result, failing)
    request = PromotionRequest(model=model, version=version, requested_by=actor.name, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, actor, "model.promotion_requested", f"model:{model}",
                 {"version": version, "request": request.id, "reason": reason})
    if settings is not None:
        from core.alerts import notify

        notify.notify_after_commit(
            session, settings, condition="approval", model=model, severity="info", subject=f"request:{request.id}",
            title=f"{model} v{version} waits for approval: {actor.name} requested its promotion"
                  + (f" ({reason})" if reason else ""),
            message=f"{actor.name} asked to promote {model} v{version} to champion"
                    + (f": {reason}" if reason else "") + f". Request {request.id} waits for an approver (not "
                    f"{actor.name}, nor whoever trained it) on the Overview or the Registry page.",
            details={"request": request.id, "version": version, "requested_by": actor.name, "reason": reason})
    return request


def _refuse_request(actor: Actor, model: str, version: int, result: policy.GateResult,
                    failing: list[policy.Check]) -> None:
    names = "; ".join(f"{c.name}: {formats.value(c.observed)} (needs {formats.value(c.required)})" for c in failing)
    refused = GatesFailed(f"{model} v{version} cannot be requested for promotion: its gates fail ({names}); "
                          "approvers could not promote it", result)

    def record(own: Session) -> None:
        audit.record(own, actor, "model.promotion_request_refused", f"model:{model}",
                     {"version": version, "failed": [c.name for c in failing]})

    refused.after_rollback.append(record)
    raise refused


@dataclass(frozen=True)
class Waiting:
    """A request an approver may decide now (``pending_for``)."""

    id: int
    kind: str  # promotion or rollback
    model: str
    version: int
    requested_by: str
    reason: str
    created_at: datetime
    approvals: int  # approvals it has so far


def pending_for(session: Session, *, actor: Actor) -> list[Waiting]:
    """The pending requests ``actor`` may decide, oldest first: none below the approver role; not their own
    request, not a version they trained (through any token of theirs), not one they already decided. The
    Overview's inbox and the sidebar count read this."""
    if not actor.at_least("approver") or ownerless_token(session, actor.name):
        return []
    me = person_behind(session, actor.name)
    out = []
    for request in pending_requests(session):
        decided = decisions_on(session, request_id=request.id)
        if any(person_behind(session, d.approver) == me for d in decided):
            continue
        kind = kind_of(request)
        if kind == "promotion":
            if person_behind(session, request.requested_by) == me:
                continue
            try:
                trainer = version_facts(session, model=request.model, version=request.version).trainer
            except LeanOpsError:  # a version gone from the registry: nothing to approve
                continue
            if person_behind(session, trainer) == me:
                continue
        out.append(Waiting(id=request.id, kind=kind, model=request.model, version=request.version,
                           requested_by=request.requested_by, reason=request.reason or "",
                           created_at=request.created_at,
                           approvals=sum(1 for d in decided if d.decision == "approve")))
    return out


def count_pending_for(session: Session, *, actor: Actor) -> int:
    """How many requests wait for ``actor`` (the sidebar's count)."""
    return len(pending_for(session, actor=actor))


def request_rollback(session: Session, *, model: str, version: int, reason: str, since: datetime
                     ) -> PromotionRequest | None:
    """Ask approvers to roll ``model`` back from its champion ``version`` (policy ``rollback.auto: approve``).

    Only the automatic rollback asks, so the request is made as ``ROLLBACK_REQUESTER`` (that is what
    makes it a rollback request). Returns None when a rollback of ``version`` was already requested
    since it became the champion (``since``): either it is still waiting, or an approver rejected it
    and chose to keep the champion; asking again every round would only repeat the question.
    """
    locks.hold(session, f"model:{model}")
    asked = session.scalar(select(PromotionRequest.id).where(
        PromotionRequest.model == model, PromotionRequest.version == version,
        PromotionRequest.requested_by == ROLLBACK_REQUESTER, PromotionRequest.created_at >= since).limit(1))
    if asked is not None:
        return None
    request = PromotionRequest(model=model, version=version, requested_by=ROLLBACK_REQUESTER, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, ROLLBACK_REQUESTER, "model.rollback_requested", f"model:{model}",
                 {"version": version, "request": request.id, "reason": reason})
    return request


def kind_of(request: PromotionRequest) -> str:
    """``rollback`` for a request raised by the automatic rollback, else ``promotion``."""
    return "rollback" if request.requested_by == ROLLBACK_REQUESTER else "promotion"


def decide(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, request_id: int, approve: bool,
           comment: str = "") -> AliasChange | None:
    """An approver approves or rejects a request.

    For a promotion request the approval that completes the gates promotes; for a rollback request
    one approval rolls the champion back (refused, and the request closed, if the champion has
    moved since it was raised).
    """
    return run_move(factory, settings, lambda session: _decide(
        session, settings, actor=actor, request_id=request_id, approve=approve, comment=comment))


def _decide(session: Session, settings: Settings, *, actor: Actor, request_id: int, approve: bool,
            comment: str) -> AliasChange | None:
    request = session.get(PromotionRequest, request_id)
    if request is None:
        raise NotFound(f"no promotion or rollback request {request_id}")
    require(session, actor, "models.approve", f"model:{request.model}")
    if ownerless_token(session, actor.name):
        raise PermissionDenied(f"{actor.name} has no owner (a token made before owners were required): it is no "
                               "person and can never approve or reject; create a token with an owner "
                               "(`cli.py token create --owner USER`)")
    if request.status != "pending":
        raise InvalidInput(f"request {request_id} is already {request.status}")
    if kind_of(request) == "rollback":
        return _decide_rollback(session, settings, actor=actor, request=request, approve=approve, comment=comment)
    facts = version_facts(session, model=request.model, version=request.version)
    trainer = facts.trainer
    # owners, not names: a token acts for its owner (training through a token, approving as yourself is one person)
    if approve and person_behind(session, actor.name) == person_behind(session, trainer):
        raise InvalidInput(f"{actor.name} trained {request.model} v{request.version} and cannot approve it"
                           + (f" ({trainer} trained it and acts for the same person)" if actor.name != trainer else ""))
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
    champion = state.champion(session, model=request.model)
    result = evaluate_gates(session, settings, model=request.model, version=request.version, champion=champion,
                            context="approval", facts=facts, actor=actor)
    if not result.passed:
        only_approvals_missing = all(c.name == "approvals" for c in result.failed())
        if only_approvals_missing:
            return None  # more approvals needed; the request stays pending
        raise GatesFailed(f"{request.model} v{request.version} is approved but other gates fail: "
                          + "; ".join(c.name for c in result.failed() if c.name != "approvals"), result)
    request.status = "approved"
    return promote_in(session, settings, actor=actor, model=request.model, version=request.version,
                      reason=f"approved request {request_id}" + (f": {comment}" if comment else ""))


def _decide_rollback(session: Session, settings: Settings, *, actor: Actor, request: PromotionRequest,
                     approve: bool, comment: str) -> AliasChange | None:
    """One approver decides a rollback request; approving it rolls back (``moves.rollback_in``)."""
    model, version, request_id = request.model, request.version, request.id
    if approve:
        locks.hold(session, f"model:{model}")
        champion = state.champion(session, model=model)
        if champion != version:
            now = f"v{champion}" if champion is not None else "unset"
            stale = InvalidInput(f"rollback request {request_id} asked to roll {model} back from v{version}, but the "
                                 f"champion is {now} now; nothing was rolled back and the request is closed")

            def close(own: Session) -> None:
                row = own.get(PromotionRequest, request_id)
                if row is not None and row.status == "pending":
                    row.status, row.decided_at = "obsolete", utcnow()
                    audit.record(own, actor, "model.rollback_request_closed", f"model:{model}",
                                 {"request": request_id, "version": version, "champion": champion})

            stale.after_rollback.append(close)
            raise stale
    session.add(Approval(request_id=request_id, approver=actor.name, decision="approve" if approve else "reject",
                         comment=comment))
    session.flush()
    audit.record(session, actor, "model.approved" if approve else "model.rejected", f"model:{model}",
                 {"version": version, "request": request_id, "comment": comment, "kind": "rollback"})
    request.status, request.decided_at = ("rolled_back" if approve else "rejected"), utcnow()
    if not approve:
        return None
    return rollback_in(session, settings, actor=actor, model=model,
                       reason=f"approved rollback request {request_id}" + (f" ({comment})" if comment else "")
                       + f": {request.reason}")


def pending_requests(session: Session, *, model: str | None = None) -> list[PromotionRequest]:
    query = select(PromotionRequest).where(PromotionRequest.status == "pending").order_by(PromotionRequest.id)
    if model:
        query = query.where(PromotionRequest.model == model)
    return list(session.scalars(query))


def requests_of_version(session: Session, *, model: str, version: int) -> list[PromotionRequest]:
    """Every request about ``model`` v``version`` (promotion and rollback, any status), oldest first."""
    return list(session.scalars(select(PromotionRequest).where(PromotionRequest.model == model,
                                                               PromotionRequest.version == version)
                                .order_by(PromotionRequest.id)))


def decisions_on(session: Session, *, request_id: int) -> list[Approval]:
    """The approvals and rejections of request ``request_id``, oldest first."""
    return list(session.scalars(select(Approval).where(Approval.request_id == request_id).order_by(Approval.id)))
