"""Named, expiring claims: exactly one process may hold a lease (e.g. the deployment's scheduler)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from core.errors import LeanOpsError
from db.models import Lease, utcnow


class LeaseHeld(LeanOpsError):
    """Another live process holds the lease."""


def acquire(session: Session, *, name: str, holder: str, ttl: float, now: datetime | None = None) -> None:
    """Take or renew ``name`` for ``holder``; raise LeaseHeld when someone else holds it and is alive."""
    now = now or utcnow()
    expires = now + timedelta(seconds=ttl)
    won = cast(CursorResult[Any], session.execute(  # a DML statement: a CursorResult, typed as Result
        update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
    )).rowcount
    if won:
        return
    current = session.get(Lease, name)
    if current is None:
        try:
            with session.begin_nested():
                session.add(Lease(name=name, holder=holder, expires_at=expires))
            return
        except DBIntegrityError:
            current = session.get(Lease, name)
    # current is None when the process that won the insert race has released the lease again meanwhile
    by = f"{current.holder} until {current.expires_at:%H:%M:%S} UTC" if current is not None else "another process"
    raise LeaseHeld(f"{name} is already held by {by}; exactly one may run per deployment")


def holder(session: Session, *, name: str) -> str | None:
    row = session.get(Lease, name)
    return row.holder if row is not None else None


def release(session: Session, *, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
