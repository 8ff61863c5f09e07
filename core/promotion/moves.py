"""Moving the champion and challenger aliases: promotion behind the gates, forced promotion, rollback.

Each move is one unit: under the model's lock row the history row and the audit event are flushed
first, MLflow's alias is moved last, and if the commit then fails the alias is put back, so MLflow,
the history and the audit log never disagree. In the same transaction a ``schedules.sync`` job is
queued (the new champion's drift and retrain schedules); once committed, the alert goes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.alerts import notify
from core.errors import Conflict, InvalidInput
from core.platform import aliases, job_queue, locks
from core.platform.aliases import CHALLENGER, CHAMPION
from core.platform.database import transaction
from core.promotion.gates import GatesFailed, blocked_message, check_gates, evaluate_gates, open_request, refuse
from core.settings import Settings
from db.models import AliasMove, utcnow


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


def promote(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str, version: int,
            reason: str = "", force: bool = False) -> AliasChange:
    """Move ``champion`` to ``version`` if every gate passes; refuse (GatesFailed) otherwise.

    ``force`` (admin only, reason required) promotes despite failed gates and is flagged.
    """
    change = run_move(factory, settings, lambda session: promote_in(
        session, settings, actor=actor, model=model, version=version, reason=reason, force=force))
    assert change is not None
    return change


def rollback(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str,
             reason: str = "") -> AliasChange:
    """Move ``champion`` back to the version that was champion before the current one."""
    change = run_move(factory, settings, lambda session: rollback_in(
        session, settings, actor=actor, model=model, reason=reason))
    assert change is not None
    return change


def set_challenger(session: Session, settings: Settings, *, actor: Actor, model: str, version: int,
                   reason: str) -> AliasChange:
    """Give a newly registered version that passed its gates the ``challenger`` alias (inside the
    caller's transaction: the training run that registered it deletes the version if it fails)."""
    require(session, actor, "training.launch", f"model:{model}")
    locks.hold(session, f"model:{model}")
    current = aliases.all_for(settings.mlflow_uri, model=model).get(CHALLENGER)
    return _move(session, settings, actor=actor, model=model, alias=CHALLENGER, current=current, to=version,
                 action="challenger", reason=reason)


def discard_challenger_in(session: Session, settings: Settings, *, actor: Actor, model: str, version: int,
                          reason: str) -> AliasChange | None:
    """Clear the ``challenger`` alias from ``version`` (the version stays registered), inside the caller's
    unit (``run_move``). None when the alias no longer points at ``version`` (it moved meanwhile)."""
    require(session, actor, "models.promote", f"model:{model}")
    locks.hold(session, f"model:{model}")
    if aliases.get(settings.mlflow_uri, model=model, alias=CHALLENGER) != version:
        return None
    return _move(session, settings, actor=actor, model=model, alias=CHALLENGER, current=version, to=None,
                 action="challenger_discarded", reason=reason)


def run_move(factory: sessionmaker[Session], settings: Settings,
             move: Callable[[Session], AliasChange | None]) -> AliasChange | None:
    """Run an alias-moving operation as one unit (see the module docstring); alert after the commit."""
    undo: list[tuple[str, str, int | None]] = []  # (model, alias, where it pointed) of every alias moved
    try:
        with transaction(factory) as session:
            session.info[_UNDO] = undo
            change = move(session)
            if change is not None and change.alias == CHAMPION:
                job_queue.enqueue(session, actor=system_actor("promotion"), kind="schedules.sync",
                                  params={"model": change.model})
    except Exception:
        for model, alias, version in reversed(undo):
            aliases.move(settings.mlflow_uri, model=model, alias=alias, version=version)
        raise
    if change is not None and change.alias == CHAMPION:
        _alert(factory, settings, change)
    return change


def promote_in(session: Session, settings: Settings, *, actor: Actor, model: str, version: int, reason: str = "",
               force: bool = False) -> AliasChange:
    """The promotion itself, inside the caller's unit (``run_move``)."""
    require(session, actor, "models.force_promote" if force else "models.promote", f"model:{model}")
    if force and not reason.strip():
        raise InvalidInput("a forced promotion needs a reason")
    aliases.check_version(settings.mlflow_uri, model=model, version=version)
    champion = aliases.all_for(settings.mlflow_uri, model=model).get(CHAMPION)
    if champion == version:
        raise InvalidInput(f"{model} v{version} is already the champion")
    # Checked before taking the lock (a refusal waits for nobody), and again under the lock,
    # since the champion the improvement gate compares with may have moved meanwhile.
    result = check_gates(session, settings, model=model, version=version, champion=champion)
    if not result.passed and not force:
        refuse(actor, model, version, result)
    locks.hold(session, f"model:{model}")
    now = aliases.all_for(settings.mlflow_uri, model=model)
    if now.get(CHAMPION) == version:
        raise Conflict(f"{model} v{version} became the champion meanwhile")
    result = evaluate_gates(session, settings, model=model, version=version, champion=now.get(CHAMPION),
                            context="promotion")
    if not result.passed and not force:
        raise GatesFailed(blocked_message(model, version, result), result)
    change = _move(session, settings, actor=actor, model=model, alias=CHAMPION, current=now.get(CHAMPION),
                   to=version, action="force_promote" if force and not result.passed else "promote", reason=reason,
                   forced=force and not result.passed, checks=result.as_dict())
    if now.get(CHALLENGER) == version:
        # recorded like any move: serving then refuses a challenger re-pointed directly in MLflow afterwards
        _move(session, settings, actor=actor, model=model, alias=CHALLENGER, current=version, to=None,
              action="challenger_cleared", reason=f"v{version} promoted to champion")
    request = open_request(session, model, version)
    if request is not None:
        request.status, request.decided_at = "promoted", utcnow()
    return change


def rollback_in(session: Session, settings: Settings, *, actor: Actor, model: str, reason: str) -> AliasChange:
    """The rollback itself, inside the caller's unit (``run_move``)."""
    require(session, actor, "models.rollback", f"model:{model}")
    locks.hold(session, f"model:{model}")
    current = aliases.get(settings.mlflow_uri, model=model, alias=CHAMPION)
    if current is None:
        raise InvalidInput(f"{model} has no champion to roll back")
    arrived = session.scalar(select(AliasMove).where(
        AliasMove.model == model, AliasMove.alias == CHAMPION, AliasMove.to_version == current)
        .order_by(desc(AliasMove.id)))
    previous = arrived.from_version if arrived is not None else None
    if previous is None:
        raise InvalidInput(f"{model} v{current} has no previous champion to roll back to")
    return _move(session, settings, actor=actor, model=model, alias=CHAMPION, current=current, to=previous,
                 action="rollback", reason=reason or f"rolled back from v{current}")


def _move(session: Session, settings: Settings, *, actor: Actor, model: str, alias: str, current: int | None,
          to: int | None, action: str, reason: str, forced: bool = False,
          checks: dict[str, Any] | None = None) -> AliasChange:
    """History row and audit event flushed first, MLflow's alias last (``current``: where it points now)."""
    session.add(AliasMove(model=model, alias=alias, from_version=current, to_version=to, action=action,
                          actor=actor.name, reason=reason, forced=forced, checks=checks))
    audit.record(session, actor, f"model.{action}", f"model:{model}",
                 {"alias": alias, "from": current, "to": to, "reason": reason, "forced": forced,
                  "checks": checks})
    session.flush()
    _set_alias(session, settings, model=model, alias=alias, current=current, to=to)
    return AliasChange(model, alias, current, to, forced, checks, action, actor.name, reason)


_UNDO = "leanops.alias_undo"


def _set_alias(session: Session, settings: Settings, *, model: str, alias: str, current: int | None,
               to: int | None) -> None:
    """Move MLflow's alias, remembering where it was: ``run_move`` puts it back if the unit fails."""
    session.info.setdefault(_UNDO, []).append((model, alias, current))
    aliases.move(settings.mlflow_uri, model=model, alias=alias, version=to)


def _alert(factory: sessionmaker[Session], settings: Settings, change: AliasChange) -> None:
    """A promotion or rollback alert, after the commit (never raises)."""
    rollback = change.action == "rollback"
    verb = "rolled back" if rollback else "force-promoted" if change.forced else "promoted"
    # Words a reader uses: a first promotion has no "from" version ("promoted none → v1" read as a bug).
    if change.from_version is None:
        move, before = f"v{change.to_version} (first champion)", "there was none before"
    else:
        move, before = f"v{change.from_version} → v{change.to_version}", f"was v{change.from_version}"
    notify.notify(factory, settings, condition="rollback" if rollback else "promotion",
                  model=change.model, severity="warning" if rollback or change.forced else "info",
                  title=f"{change.model}: champion {verb} {move}",
                  message=f"{change.actor} {verb} {change.model}: champion is now v{change.to_version} "
                          f"({before}). Reason: {change.reason or 'none given'}.",
                  details={"from_version": change.from_version, "to_version": change.to_version,
                           "actor": change.actor, "reason": change.reason, "forced": change.forced})


# -- reading -------------------------------------------------------------------------------------

def history(session: Session, *, model: str, alias: str | None = CHAMPION, limit: int = 200) -> list[AliasMove]:
    query = select(AliasMove).where(AliasMove.model == model).order_by(desc(AliasMove.id)).limit(limit)
    if alias:
        query = query.where(AliasMove.alias == alias)
    return list(session.scalars(query))
