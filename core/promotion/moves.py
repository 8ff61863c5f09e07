"""Moving the champion and challenger aliases: promotion behind the gates, forced promotion, rollback.

Each move is one unit: under the model's lock row, ``core/registry/state.py`` ``move`` writes the
current-alias row, the history row and the audit event and queues the ``aliases.sync`` follow-up that
projects the move onto MLflow; a ``schedules.sync`` job (the new champion's drift and retrain schedules)
is queued in the same transaction. Once committed, the alert goes out.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.alerts import notify
from core.errors import Conflict, InvalidInput, NotFound
from core.platform import job_queue, locks
from core.platform.database import transaction
from core.promotion.gates import GatesFailed, blocked_message, check_gates, evaluate_gates, open_request, refuse
from core.registry import projection, state
from core.registry.state import CHALLENGER, CHAMPION, AliasChange
from core.settings import Settings
from core.training import runs
from db.models import AliasMove, utcnow

__all__ = ["AliasChange", "history", "promote", "rollback", "run_move", "set_challenger"]


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
    return state.move(session, actor=actor, model=model, alias=CHALLENGER, to=version, action="challenger",
                      reason=reason)


def discard_challenger_in(session: Session, settings: Settings, *, actor: Actor, model: str, version: int,
                          reason: str) -> AliasChange | None:
    """Clear the ``challenger`` alias from ``version`` (the version stays registered), inside the caller's
    unit (``run_move``). None when the alias no longer points at ``version`` (it moved meanwhile)."""
    require(session, actor, "models.promote", f"model:{model}")
    locks.hold(session, f"model:{model}")
    if state.current(session, model=model).get(CHALLENGER) != version:
        return None
    return state.move(session, actor=actor, model=model, alias=CHALLENGER, to=None, action="challenger_discarded",
                      reason=reason)


def run_move(factory: sessionmaker[Session], settings: Settings,
             move: Callable[[Session], AliasChange | None]) -> AliasChange | None:
    """Run an alias-moving operation as one unit (see the module docstring); alert after the commit."""
    with transaction(factory) as session:
        change = move(session)
        if change is not None and change.alias == CHAMPION:
            job_queue.enqueue(session, actor=system_actor("promotion"), kind="schedules.sync",
                              params={"model": change.model})
    if change is not None:
        projection.project_now(factory, settings, model=change.model)
        if change.alias == CHAMPION:
            _alert(factory, settings, change)
    return change


def promote_in(session: Session, settings: Settings, *, actor: Actor, model: str, version: int, reason: str = "",
               force: bool = False) -> AliasChange:
    """The promotion itself, inside the caller's unit (``run_move``)."""
    require(session, actor, "models.force_promote" if force else "models.promote", f"model:{model}")
    if force and not reason.strip():
        raise InvalidInput("a forced promotion needs a reason")
    if runs.row_for_version(session, model=model, version=version) is None:
        raise NotFound(f"model {model!r} has no version {version} that LeanOps trained (no LeanOps training run "
                       "made it; a version registered outside LeanOps cannot be promoted)")
    champion = state.current(session, model=model).get(CHAMPION)
    if champion == version:
        raise InvalidInput(f"{model} v{version} is already the champion")
    # Checked before taking the lock (a refusal waits for nobody), and again under the lock,
    # since the champion the improvement gate compares with may have moved meanwhile.
    result = check_gates(session, settings, model=model, version=version, champion=champion)
    if not result.passed and not force:
        refuse(actor, model, version, result, settings)
    locks.hold(session, f"model:{model}")
    now = state.current(session, model=model)
    if now.get(CHAMPION) == version:
        raise Conflict(f"{model} v{version} became the champion meanwhile")
    result = evaluate_gates(session, settings, model=model, version=version, champion=now.get(CHAMPION),
                            context="promotion", actor=actor)
    if not result.passed and not force:
        raise GatesFailed(blocked_message(model, version, result), result)
    change = state.move(session, actor=actor, model=model, alias=CHAMPION, to=version,
                        action="force_promote" if force and not result.passed else "promote", reason=reason,
                        forced=force and not result.passed, checks=result.as_dict())
    if now.get(CHALLENGER) == version:
        state.move(session, actor=actor, model=model, alias=CHALLENGER, to=None, action="challenger_cleared",
                   reason=f"v{version} promoted to champion")
    request = open_request(session, model, version)
    if request is not None:
        request.status, request.decided_at = "promoted", utcnow()
    return change


def rollback_in(session: Session, settings: Settings, *, actor: Actor, model: str, reason: str) -> AliasChange:
    """The rollback itself, inside the caller's unit (``run_move``)."""
    require(session, actor, "models.rollback", f"model:{model}")
    locks.hold(session, f"model:{model}")
    arrived = state.arrival(session, model=model, alias=CHAMPION)
    if arrived is None:
        raise InvalidInput(f"{model} has no champion to roll back")
    current, previous = arrived.version, arrived.from_version
    if previous is None:
        raise InvalidInput(f"{model} v{current} has no previous champion to roll back to")
    return state.move(session, actor=actor, model=model, alias=CHAMPION, to=previous, action="rollback",
                      reason=reason or f"rolled back from v{current}")


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
                  # the cause in the title: who moved it and why (a channel often shows only the title)
                  title=f"{change.model}: champion {verb} {move} by {change.actor}: "
                        f"{change.reason or 'no reason given'}",
                  message=f"{change.actor} {verb} {change.model}: champion is now v{change.to_version} "
                          f"({before}). Reason: {change.reason or 'none given'}.",
                  details={"from_version": change.from_version, "to_version": change.to_version,
                           "actor": change.actor, "reason": change.reason, "forced": change.forced})


# -- reading -------------------------------------------------------------------------------------

def history(session: Session, *, model: str, alias: str | None = CHAMPION, limit: int = 200) -> list[AliasMove]:
    return state.history(session, model=model, alias=alias, limit=limit)
