"""Automatic rollback: a newly promoted champion whose live performance let us down goes back (policy ``rollback``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import policy
from core.actors import system_actor
from core.monitoring import performance
from core.platform import aliases
from core.promotion import moves
from core.retraining.decisions import Decision, should_roll_back
from core.settings import Settings
from db.models import AliasMove, utcnow


@dataclass(frozen=True)
class RollbackCheck:
    model: str
    decision: Decision
    from_version: int | None = None
    to_version: int | None = None


def check_rollback(factory: sessionmaker[Session], settings: Settings, model: str,
                   now: datetime | None = None) -> RollbackCheck:
    """Roll back a newly promoted champion whose live performance let us down (policy ``rollback``)."""
    now = now or utcnow()
    rules = policy.rules_for(settings.home, model)
    champion = aliases.get(settings.mlflow_uri, model=model, alias=aliases.CHAMPION)
    if champion is None:
        return RollbackCheck(model, Decision(False, f"{model} has no champion"))
    with factory() as session:
        arrived = session.scalar(select(AliasMove).where(
            AliasMove.model == model, AliasMove.alias == aliases.CHAMPION, AliasMove.to_version == champion)
            .order_by(desc(AliasMove.id)).limit(1))
        current = performance.evaluate(session, model=model, version=champion, rules=rules)
        previous = None
        if arrived is not None and arrived.from_version is not None:
            previous = performance.evaluate(session, model=model, version=arrived.from_version, rules=rules)
    decision = should_roll_back(promoted_at=arrived.ts if arrived else None, action=arrived.action if arrived
                                else None, now=now, current=current, previous=previous, rules=rules)
    if not decision.act:
        return RollbackCheck(model, decision)
    # The "rollback" alert (with this reason) goes out once the move is committed.
    change = moves.rollback(factory, settings, actor=system_actor("auto-rollback"), model=model,
                            reason=f"automatic rollback: {decision.reason}")
    return RollbackCheck(model, decision, change.from_version, change.to_version)
