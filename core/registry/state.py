"""A model's state, owned by LeanOps' DB: where each alias points, since when, and the facts flows need.

This module owns the alias tables: ``current_aliases`` (where champion and challenger point now, the
truth) and ``alias_history`` (every move, the production timeline). Nothing else selects them; other
stages call the readers below. Promotion, rollback, shadow decisions and auto-rollback move an alias
only through ``move`` (inside their own unit, under the model's lock row), which writes the history row,
the current row and the audit event, and queues the ``aliases.sync`` follow-up in the same transaction.

MLflow's alias is a projection: ``sync`` (the follow-up's work, and a periodic sweep) sets MLflow's
aliases to what the DB says, so ``mlflow.pyfunc.load_model("models:/NAME@champion")`` keeps working. An
alias someone moved by hand in MLflow is put back, audited and alerted; serving reads the DB, so it never
serves such a move.

A flow reads a model's facts once, as a ``ModelState`` (``state_of``), and hands it down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, or_, select
from sqlalchemy.orm import Session

from core import audit
from core.actors import Actor, system_actor
from core.platform import job_queue, locks
from core.platform.registry_port import CHALLENGER, CHAMPION, OWNED, SHADOW, RegistryPort
from core.training import runs
from db.models import AliasMove, CurrentAlias, TrainingRun

if TYPE_CHECKING:
    from core.policy import ModelPolicy, Policies

__all__ = ["CHALLENGER", "CHAMPION", "SHADOW", "AliasChange", "ModelState", "state_of"]

log = logging.getLogger("leanops.registry")
SYNC_KIND = job_queue.ALIASES_SYNC.name  # the follow-up job that projects the DB's aliases onto MLflow
SYNC_ACTOR = system_actor("alias-sync")
CONDITION = "integrity"  # the alert condition of an alias moved outside LeanOps


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
class Arrival:
    """The move that put an alias's current version there."""

    version: int
    since: datetime
    from_version: int | None
    action: str
    actor: str


@dataclass(frozen=True)
class ModelState:
    """What a flow needs to know about one model, read once at the start of the operation.

    ``champion_arrival`` says since when the champion serves and which version it replaced (what a rollback
    goes back to). ``task`` comes from the training runs (the first version's task: a model keeps it). ``run`` reads a
    version's training run once and keeps it.
    """

    model: str
    champion: int | None
    challenger: int | None
    champion_arrival: Arrival | None
    policy: ModelPolicy
    task: str | None
    _runs: dict[int, TrainingRun | None] = field(default_factory=dict, repr=False, compare=False)

    def run(self, session: Session, version: int) -> TrainingRun | None:
        """The training run that registered ``version`` (None: made outside LeanOps), read once."""
        if version not in self._runs:
            self._runs[version] = runs.row_for_version(session, model=self.model, version=version,
                                                       load=(TrainingRun.reference,))
        return self._runs[version]


def state_of(session: Session, policies: Policies, *, model: str) -> ModelState:
    """The model's state now: its aliases and their arrival, its policy (``policies``: the workspace's
    cached ``policy.Policies``) and its task."""
    rows = {r.alias: r for r in session.scalars(select(CurrentAlias).where(CurrentAlias.model == model))}
    champion = rows.get(CHAMPION)
    return ModelState(model=model, champion=_version(champion), challenger=_version(rows.get(CHALLENGER)),
                      champion_arrival=_arrival(session, champion) if champion is not None else None,
                      policy=policies.rules_for(model), task=runs.task_of(session, model=model))


def _version(row: CurrentAlias | None) -> int | None:
    return row.version if row is not None else None


def _arrival(session: Session, row: CurrentAlias) -> Arrival | None:
    moved = session.get(AliasMove, row.move_id)
    if moved is None or row.version is None:
        return None
    return Arrival(row.version, moved.ts, moved.from_version, moved.action, moved.actor)


# -- readers -------------------------------------------------------------------------------------

def current(session: Session, *, model: str) -> dict[str, int]:
    """alias → version where LeanOps' aliases of ``model`` point now."""
    rows = session.execute(select(CurrentAlias.alias, CurrentAlias.version)
                           .where(CurrentAlias.model == model, CurrentAlias.version.is_not(None))).all()
    return {alias: int(version) for alias, version in rows if version is not None}


def current_many(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(model, alias) → version for each of ``keys`` that points somewhere (one query: serving's follower)."""
    if not keys:
        return {}
    models = sorted({m for m, _ in keys})
    rows = session.execute(select(CurrentAlias.model, CurrentAlias.alias, CurrentAlias.version)
                           .where(CurrentAlias.model.in_(models), CurrentAlias.version.is_not(None))).all()
    wanted = set(keys)
    return {(m, a): int(v) for m, a, v in rows if (m, a) in wanted and v is not None}


def champion(session: Session, *, model: str) -> int | None:
    return current(session, model=model).get(CHAMPION)


def champions(session: Session) -> dict[str, int]:
    """model → its champion version, for every model that has one."""
    rows = session.execute(select(CurrentAlias.model, CurrentAlias.version)
                           .where(CurrentAlias.alias == CHAMPION, CurrentAlias.version.is_not(None))).all()
    return {m: int(v) for m, v in rows if v is not None}


def arrival(session: Session, *, model: str, alias: str = CHAMPION) -> Arrival | None:
    """The move that put ``alias``'s current version there (None: the alias points nowhere)."""
    row = session.get(CurrentAlias, (model, alias))
    return _arrival(session, row) if row is not None else None


def history(session: Session, *, model: str, alias: str | None = CHAMPION, limit: int = 200,
            oldest_first: bool = False) -> list[AliasMove]:
    """The alias moves of ``model`` (one alias, or all with None), newest first unless ``oldest_first``."""
    query = select(AliasMove).where(AliasMove.model == model)
    if alias:
        query = query.where(AliasMove.alias == alias)
    query = query.order_by(AliasMove.id if oldest_first else desc(AliasMove.id))
    return list(session.scalars(query.limit(limit) if limit else query))


def moves_of_version(session: Session, *, model: str, version: int, forced_only: bool = False) -> list[AliasMove]:
    """Every move to or from ``version`` (oldest first); ``forced_only``: forced promotions to it."""
    query = select(AliasMove).where(AliasMove.model == model)
    if forced_only:
        query = query.where(AliasMove.to_version == version, AliasMove.forced.is_(True))
    else:
        query = query.where(or_(AliasMove.to_version == version, AliasMove.from_version == version))
    return list(session.scalars(query.order_by(AliasMove.id)))


def last_move_to(session: Session, *, model: str, alias: str, version: int) -> AliasMove | None:
    return session.scalar(select(AliasMove).where(AliasMove.model == model, AliasMove.alias == alias,
                                                  AliasMove.to_version == version)
                          .order_by(desc(AliasMove.id)).limit(1))


def any_moves(session: Session) -> bool:
    return session.scalar(select(AliasMove.id).limit(1)) is not None


# -- the one writer ------------------------------------------------------------------------------

def move(session: Session, *, actor: Actor, model: str, alias: str, to: int | None, action: str, reason: str,
         forced: bool = False, checks: dict[str, Any] | None = None) -> AliasChange:
    """Point ``alias`` of ``model`` at ``to`` (None removes it), inside the caller's unit.

    Writes the history row, the current row and the audit event, and queues the ``aliases.sync``
    follow-up that projects the move onto MLflow. Holds the model's lock row (a caller comparing with
    the current version should take it before reading).
    """
    locks.hold(session, f"model:{model}")
    row = session.get(CurrentAlias, (model, alias))
    was = row.version if row is not None else None
    moved = AliasMove(model=model, alias=alias, from_version=was, to_version=to, action=action, actor=actor.name,
                      reason=reason, forced=forced, checks=checks)
    session.add(moved)
    audit.record(session, actor, f"model.{action}", f"model:{model}",
                 {"alias": alias, "from": was, "to": to, "reason": reason, "forced": forced, "checks": checks})
    session.flush()
    if row is None:
        session.add(CurrentAlias(model=model, alias=alias, version=to, move_id=moved.id, since=moved.ts))
    else:
        row.version, row.move_id, row.since = to, moved.id, moved.ts
    session.flush()
    queued: set[str] = session.info.setdefault("leanops.alias_sync_queued", set())
    if model not in queued:  # one follow-up per model and unit, however many aliases it moved
        job_queue.enqueue(session, actor=SYNC_ACTOR, kind=SYNC_KIND, params={"model": model})
        queued.add(model)
    return AliasChange(model, alias, was, to, forced, checks, action, actor.name, reason)


# -- the projection onto MLflow ------------------------------------------------------------------

@dataclass(frozen=True)
class Restored:
    """An owned alias MLflow had somewhere LeanOps did not put it, put back."""

    model: str
    alias: str
    found: int | None  # where MLflow's alias pointed
    restored: int | None  # where LeanOps says it points (None: removed)


def sync(session: Session, registry: RegistryPort, *, model: str) -> list[Restored]:
    """Set MLflow's champion and challenger of ``model`` to what the DB says, inside the caller's unit.

    A difference the DB explains (a move not projected yet) is simply made; one it does not (MLflow
    points neither where LeanOps put it last nor where it points now: a move made by hand in MLflow) is
    put back too, audited as ``model.alias_restored`` and returned for the caller to alert.
    """
    locks.hold(session, f"model:{model}")
    rows = {r.alias: r for r in session.scalars(select(CurrentAlias).where(CurrentAlias.model == model))}
    found = registry.aliases(model)
    restored: list[Restored] = []
    for alias in OWNED:
        row = rows.get(alias)
        want = row.version if row is not None else None
        there = found.get(alias)
        if there != want:
            registry.set_alias(model, alias, want)
            expected = {want, row.projected} if row is not None else {None}
            if there not in expected:
                restored.append(Restored(model, alias, there, want))
                audit.record(session, SYNC_ACTOR, "model.alias_restored", f"model:{model}",
                             {"alias": alias, "found": there, "restored": want})
        if row is not None and row.projected != want:
            row.projected = want
    session.flush()
    return restored


def models_to_sync(session: Session) -> list[str]:
    """Every model LeanOps governs: each with an alias in its DB or a version it registered."""
    known = set(session.scalars(select(CurrentAlias.model).distinct()))
    return sorted(known | set(runs.registered_models(session)))
