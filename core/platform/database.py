"""The unit of work over the metadata database, and its failures in words a user can act on.

``db/`` knows engines, sessions and migrations; what a failed transaction means to LeanOps (a
refusal's audit record that must survive the rollback, a locked or unreachable database) is here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import LeanOpsError, StoreUnavailable
from db import session as db_session


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error.

    A ``LeanOpsError``'s ``after_rollback`` writes run in fresh transactions once the failed one has
    rolled back; a locked or unreachable database becomes ``StoreUnavailable`` with a readable reason.
    """
    try:
        with factory.begin() as session:
            yield session
    except LeanOpsError as exc:
        for write in exc.after_rollback:
            with factory.begin() as session:
                write(session)
        raise
    except OperationalError as exc:
        raise StoreUnavailable(describe_db_error(exc)) from exc


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only; a locked or unreachable database becomes ``StoreUnavailable``."""
    try:
        with factory() as session:
            yield session
    except DBAPIError as exc:
        raise StoreUnavailable(describe_db_error(exc)) from exc


def migrate(url: str) -> None:
    """Create or upgrade the metadata schema to the newest Alembic revision."""
    try:
        db_session.migrate(url)
    except OperationalError as exc:
        raise StoreUnavailable(describe_db_error(exc)) from exc


def describe_db_error(exc: DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "locked" in first:
        return f"the metadata database is busy (locked by another writer): {first}; try again"
    return f"the metadata database is unavailable: {first}"
