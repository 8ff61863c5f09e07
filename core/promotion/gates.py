"""The policy gates of one model version: evaluated from the facts of its training run, stored with it.

A version's gates are evaluated (and stored) when it is registered, when an approval arrives and
when it is promoted; promotion refuses a version whose gates fail unless an admin forces it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit, formats, policy
from core.accounts.auth import ownerless_token, person_behind
from core.actors import Actor
from core.errors import LeanOpsError, PolicyBlocked
from core.platform.database import transaction
from core.promotion import test_reports
from core.registry import gate_records, stewardship
from core.registry.views import VersionFacts, version_facts
from core.settings import Settings
from db.models import Approval, PromotionRequest, utcnow


class GatesFailed(PolicyBlocked):
    def __init__(self, message: str, result: policy.GateResult) -> None:
        super().__init__(message)
        self.result = result


def check_gates(session: Session, settings: Settings, *, model: str, version: int, champion: int | None,
                facts: VersionFacts | None = None, now: datetime | None = None) -> policy.GateResult:
    """Every gate for ``model`` v``version`` as things stand now (reads only).

    ``champion`` is the version the improvement gate compares with (the caller has read the alias);
    ``facts`` may be passed when the caller already has them.
    """
    facts = facts or version_facts(session, model=model, version=version)
    champion_metrics = (version_facts(session, model=model, version=champion).metrics
                        if champion not in (None, version) else None)
    rules = settings.policies.rules_for(model)
    trained_on = next((c for c, m in facts.fairness.items() if isinstance(m, dict)
                       and m.get("demographic_parity_ratio") is not None), None)
    if rules.fairness.column is None and trained_on is not None:
        # The policy names no fairness column: the sensitive column named at training is gated instead, so a
        # measured disparity never reaches production unflagged (the report says which column, from where).
        rules = rules.model_copy(update={"fairness": rules.fairness.model_copy(update={"column": trained_on})})
    now = now or utcnow()
    result = policy.evaluate(rules, task=facts.task, metrics=facts.metrics,
                             champion_metrics=champion_metrics, fairness=facts.fairness,
                             certificate_passed=facts.certificate_passed, certificate_at=facts.certificate_at,
                             now=now, trainer=person_behind(session, facts.trainer),
                             approvals=_approvals(session, model, version))
    # The `review` gate: an overdue periodic review of a tier that blocks (policy review.blocking) refuses
    # every version of the model until an approver records one (core/registry/stewardship.py).
    review = stewardship.gate_check(stewardship.status(session, rules, model=model, now=now))
    if review is not None:
        result = policy.GateResult(result.passed and review.passed, (*result.checks, review))
    return result


def evaluate_gates(session: Session, settings: Settings, *, model: str, version: int, champion: int | None,
                   context: str, facts: VersionFacts | None = None, actor: Actor | None = None) -> policy.GateResult:
    """check_gates, stored with the version (registration, approval, promotion) with its signed test report
    (core/promotion/test_reports.py); at approval, ``actor`` is the approver and signs it too."""
    result = check_gates(session, settings, model=model, version=version, champion=champion, facts=facts)
    gate_records.record(session, model=model, version=version, context=context, passed=result.passed,
                        checks=result.as_dict())
    test_reports.issue(session, settings, model=model, version=version, context=context, result=result, actor=actor,
                       approver=actor if context == "approval" and actor is not None else None)
    return result


# The requester of every rollback request (policy ``rollback.auto: approve``, see
# ``approvals.request_rollback``): such a request asks to move the champion back from its version,
# so it is never a promotion request of that version and its approvals never count as promotion's.
ROLLBACK_REQUESTER = "system:auto-rollback"


def open_request(session: Session, model: str, version: int) -> PromotionRequest | None:
    """The pending (or approved, not yet promoted) promotion request of a version."""
    return session.scalar(select(PromotionRequest).where(
        PromotionRequest.model == model, PromotionRequest.version == version,
        PromotionRequest.requested_by != ROLLBACK_REQUESTER,
        PromotionRequest.status.in_(("pending", "approved"))).order_by(desc(PromotionRequest.id)))


def _approvals(session: Session, model: str, version: int) -> tuple[str, ...]:
    request = open_request(session, model, version)
    if request is None:
        return ()
    # the people behind them (a token's owner): one person approving twice, or as the trainer, counts once or not;
    # a token with no owner is no person and never counts (its approvals from before owners were required)
    return tuple(person_behind(session, name) for name in session.scalars(select(Approval.approver).where(
        Approval.request_id == request.id, Approval.decision == "approve")) if not ownerless_token(session, name))


def refresh(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """Evaluate and store again (context ``policy_changed``) the gates of every version someone may act on:
    each model's challenger (every aliased version but the champion) and the versions waiting for approval.
    Run by the ``gates.refresh`` job a policy save queues, so the Registry's gate panel never shows the previous
    policy's verdict. The champion is left alone: its gates are those it was promoted on (its request is no
    longer open, so a new evaluation would count no approvals and misstate how it got there)."""
    from core.registry import state

    with transaction(factory) as session:
        targets: dict[str, set[int]] = {}
        for model in state.models_to_sync(session):
            current = state.current(session, model=model)
            champion = current.get(state.CHAMPION)
            targets.setdefault(model, set()).update(v for v in current.values() if v != champion)
        pending = select(PromotionRequest).where(PromotionRequest.status == "pending",
                                                 PromotionRequest.requested_by != ROLLBACK_REQUESTER)
        for request in session.scalars(pending):
            targets.setdefault(request.model, set()).add(request.version)
        done: dict[str, dict[int, bool]] = {}
        for model, versions in sorted(targets.items()):
            champion = state.champion(session, model=model)
            for version in sorted(versions):
                try:
                    result = evaluate_gates(session, settings, model=model, version=version, champion=champion,
                                            context="policy_changed")
                except LeanOpsError:  # a version without LeanOps facts (gone, imported elsewhere): nothing to show
                    continue
                done.setdefault(model, {})[version] = result.passed
    return {"models": {m: {str(v): p for v, p in vs.items()} for m, vs in done.items()}}


def blocked_message(model: str, version: int, result: policy.GateResult) -> str:
    failing = "; ".join(f"{c.name}: {formats.value(c.observed)} (needs {formats.value(c.required)})"
                        for c in result.failed())  # 0.412, not 0.41234567890123456
    return f"{model} v{version} cannot be promoted: {failing}"


def refuse(actor: Actor, model: str, version: int, result: policy.GateResult, settings: Settings | None = None) -> None:
    """Raise GatesFailed; the attempt and its gates (with their signed test report when ``settings`` are
    given) are recorded once the caller has rolled back."""
    blocked = GatesFailed(blocked_message(model, version, result), result)

    def record(own: Session) -> None:
        audit.record(own, actor, "model.promotion_blocked", f"model:{model}",
                     {"version": version, "failed": [c.name for c in result.failed()]})
        gate_records.record(own, model=model, version=version, context="promotion", passed=False,
                            checks=result.as_dict())
        if settings is not None:
            test_reports.issue(own, settings, model=model, version=version, context="promotion", result=result,
                               actor=actor)

    blocked.after_rollback.append(record)
    raise blocked
