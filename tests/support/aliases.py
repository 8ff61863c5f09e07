"""Setting and reading model aliases in tests the way LeanOps owns them: in its DB (``core/registry/state.py``).

``move`` records the move as LeanOps does (history row, current row, audit event, the ``aliases.sync``
follow-up) and projects it onto MLflow at once, so tools that read MLflow see it too. ``where`` is anything
with ``db_url`` and ``registry`` (the workspace's settings).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.actors import system_actor
from core.platform.database import transaction
from core.platform.registry_port import CHALLENGER, CHAMPION, SHADOW
from core.registry import state
from db.models import AliasMove, CurrentAlias
from db.session import make_engine, make_session_factory

__all__ = ["CHALLENGER", "CHAMPION", "SHADOW", "all_for", "get", "move"]


@cache
def _factory(db_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(db_url))


def move(where: Any, *, model: str, alias: str, version: int | None, at: datetime | None = None) -> None:
    """``at``: when the move is recorded as made (a test that logs traffic from before now)."""
    with transaction(_factory(where.db_url)) as session:
        state.move(session, actor=system_actor("test"), model=model, alias=alias, to=version, action="test",
                   reason="test set-up")
        if at is not None:
            row = session.get(CurrentAlias, (model, alias))
            assert row is not None
            row.since = at
            moved = session.get(AliasMove, row.move_id)
            assert moved is not None
            moved.ts = at
    where.registry.set_alias(model, alias, version)


def get(where: Any, *, model: str, alias: str) -> int | None:
    return all_for(where, model=model).get(alias)


def all_for(where: Any, *, model: str) -> dict[str, int]:
    with _factory(where.db_url)() as session:
        return state.current(session, model=model)
