"""Promotion behind policy gates, approvals, forced promotion and rollback of the champion alias.

The alias move in MLflow, the history row and the audit event succeed or fail together: the
model's lock row is held for the whole transaction, the DB rows are flushed first, the MLflow
alias is moved last, and if the commit then fails the caller's ``undo`` puts the alias back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.auth import require
from core.errors import InvalidInput
from core.platform import aliases, locks
from core.platform.aliases import CHALLENGER, CHAMPION
from core.promotion.gates import (
    GatesFailed,
    Registry,
    _blocked_message,
    _open_request,
    _refuse,
    check_gates,
    evaluate_gates,
)
from db.models import AliasMove, utcnow
from db.session import transaction

log = logging.getLogger("leanops.promotion")


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
    from core.retraining import model_schedules

    try:
        with transaction(factory) as session:
            model_schedules.sync_model_schedules(session, registry)
    except Exception:  # noqa: BLE001 - the promotion stands; the 15-minute monitor job syncs again
        log.exception("could not sync the model schedules after a promotion")


def _alert(factory: sessionmaker[Session], registry: Registry, change: AliasChange) -> None:
    """A promotion or rollback alert, after the commit (never raises)."""
    from core.alerts import notify

    rollback = change.action == "rollback"
    was = f"v{change.from_version}" if change.from_version is not None else "none"
    verb = "rolled back" if rollback else "force-promoted" if change.forced else "promoted"
    notify.notify(factory, notify.settings_for(registry.home), condition="rollback" if rollback else "promotion",
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
