"""Automatic rollback: a newly promoted champion whose live performance let us down goes back (policy ``rollback``).

With ``rollback.auto: approve`` the champion is not moved by the system: a rollback request waits for an
approver (``approvals.request_rollback``; approving it rolls back) and an alert says so. Labels drive
this decision, which is why feedback is bound to whoever made the prediction (``predictions.record_feedback``).
Labels arrive late: with ``performance.use_estimate`` a champion without enough labels yet is judged on
the label-free estimate of its newest drift check since the promotion, and the rollback (or the request)
is audited with that estimate (``performance.estimate_acted``, in the same transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.actors import system_actor
from core.alerts import notify
from core.monitoring import performance
from core.platform.database import transaction
from core.promotion import approvals, moves
from core.registry import state
from core.retraining.decisions import Decision, Estimate, should_roll_back
from core.settings import Settings
from db.models import utcnow

ACTOR = "auto-rollback"


@dataclass(frozen=True)
class RollbackCheck:
    model: str
    decision: Decision
    from_version: int | None = None
    to_version: int | None = None
    request_id: int | None = None  # the rollback request waiting for an approver (``rollback.auto: approve``)


def check_rollback(factory: sessionmaker[Session], settings: Settings, model: str,
                   now: datetime | None = None) -> RollbackCheck:
    """Roll back a newly promoted champion whose live performance let us down (policy ``rollback``)."""
    now = now or utcnow()
    with factory() as session:
        facts = state.state_of(session, settings.policies, model=model)
        rules, champion, arrived = facts.policy, facts.champion, facts.champion_arrival
        if champion is None:
            return RollbackCheck(model, Decision(False, f"{model} has no champion"))
        current = performance.evaluate(session, model=model, version=champion, rules=rules,
                                       store=settings.data_store)
        previous = None
        if arrived is not None and arrived.from_version is not None:
            previous = performance.evaluate(session, model=model, version=arrived.from_version, rules=rules,
                                            store=settings.data_store)
        estimate = (latest_estimate(session, model=model, version=champion, since=arrived.since)
                    if arrived is not None and rules.performance.use_estimate else None)
    decision = should_roll_back(promoted_at=arrived.since if arrived else None, action=arrived.action if arrived
                                else None, now=now, current=current, previous=previous, rules=rules,
                                estimate=estimate)
    if not decision.act:
        return RollbackCheck(model, decision)
    # With too few labels only the estimate can have decided: it is audited with the move or request.
    used = estimate if current.status == "insufficient" else None
    if rules.rollback.auto == policy.APPROVE:
        assert arrived is not None  # should_roll_back acts only on a champion that arrived by a recorded move
        return _ask(factory, settings, model=model, champion=champion, previous=arrived.from_version,
                    since=arrived.since, reason=decision.reason, estimate=used)
    # The "rollback" alert (with this reason) goes out once the move is committed.
    actor = system_actor(ACTOR)
    reason = f"automatic rollback: {decision.reason}"

    def roll_back(session: Session) -> moves.AliasChange:
        change = moves.rollback_in(session, settings, actor=actor, model=model, reason=reason)
        if used is not None:
            _audit_estimate(session, model=model, estimate=used, action="rollback", reason=decision.reason)
        return change

    change = moves.run_move(factory, settings, roll_back)
    assert change is not None
    return RollbackCheck(model, decision, change.from_version, change.to_version)


def latest_estimate(session: Session, *, model: str, version: int, since: datetime) -> Estimate | None:
    """The label-free estimate of the newest drift check on ``version`` made at or after ``since`` (its
    promotion): an estimate of the data it served as champion, not of what it saw as a challenger."""
    from core.monitoring import checks

    # the newest that estimated anything (a model without probabilities estimates nothing)
    for view in checks.of_version(session, model=model, version=version, since=since, limit=20):
        if view.estimated_performance:
            return Estimate(view.id, version, view.estimated_performance)
    return None


def _audit_estimate(session: Session, *, model: str, estimate: Estimate, action: str, reason: str) -> None:
    """The estimate that made the rollback (or its request), kept whole beside the move's own audit event."""
    audit.record(session, system_actor(ACTOR), "performance.estimate_acted", f"model:{model}",
                 {"action": action, "version": estimate.version, "check_id": estimate.check_id,
                  "reason": reason, "estimated_performance": estimate.values})


def _ask(factory: sessionmaker[Session], settings: Settings, *, model: str, champion: int, previous: int | None,
         since: datetime, reason: str, estimate: Estimate | None = None) -> RollbackCheck:
    """Raise a rollback request for approvers instead of moving the alias, and alert (once) that it waits."""
    with transaction(factory) as session:
        request = approvals.request_rollback(session, model=model, version=champion,
                                             reason=f"automatic rollback: {reason}", since=since)
        request_id = request.id if request is not None else None
        if request is not None and estimate is not None:
            _audit_estimate(session, model=model, estimate=estimate, action="rollback_requested", reason=reason)
    if request_id is None:
        return RollbackCheck(model, Decision(False, f"a rollback of v{champion} was already requested "
                                                    f"(rollback.auto is approve): {reason}"))
    back_to = f"v{previous}" if previous is not None else "its predecessor"
    notify.notify(factory, settings, condition="rollback", model=model, severity="warning",
                  title=f"{model}: rollback of v{champion} awaits approval",
                  message=f"{reason}. The policy (rollback.auto: approve) asks an approver first: {model} stays on "
                          f"v{champion} until rollback request {request_id} is approved on the Registry page, "
                          f"which rolls it back to {back_to}.",
                  details={"request": request_id, "from_version": champion, "to_version": previous,
                           "reason": reason})
    return RollbackCheck(model, Decision(False, f"rollback request {request_id} awaits an approver: {reason}"),
                         request_id=request_id)
