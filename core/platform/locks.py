"""Serialise work on one named thing across processes, inside the caller's transaction."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from db.models import Lock


def hold(session: Session, name: str) -> None:
    """Block until no other transaction holds ``name``; hold it until this transaction ends.

    PostgreSQL: a row lock on ``locks.name``. SQLite: the update takes the database write lock.
    """
    bump = update(Lock).where(Lock.name == name).values(counter=Lock.counter + 1)
    if cast(CursorResult[Any], session.execute(bump)).rowcount:  # DML gives a CursorResult, typed as Result
        return
    try:
        with session.begin_nested():
            session.add(Lock(name=name, counter=1))
    except DBIntegrityError:  # created meanwhile by another transaction: wait for it like everyone else
        session.execute(update(Lock).where(Lock.name == name).values(counter=Lock.counter + 1))
