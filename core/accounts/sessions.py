"""Browser sessions that survive a reload: an HttpOnly cookie holds a random id, a ``sessions`` row its hash.

The dashboard's login route (``ui/auth_routes.py``) calls ``start`` after a good password and puts the
plain id in the cookie; every run of the dashboard calls ``resolve`` with the cookie's value. The
database never holds the id itself (only its sha256), so a copy of the table signs nobody in.
A session ends at logout (``end``), after ``idle_minutes`` without a run, at its absolute expiry, when an
admin revokes it (``revoke``), or when its user's password, role or active flag changes
(``auth.end_sessions``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.accounts import auth
from core.actors import Actor
from core.errors import InvalidInput, NotFound
from db.models import BrowserSession, User, utcnow

COOKIE = "leanops_session"
TOUCH_SECONDS = 60  # last_seen_at is written at most this often (a run is not a write)


def digest(session_id: str) -> str:
    """The stored form of a session id: 256 random bits need no slow hash."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(session: Session, *, actor: Actor, user_agent: str, client: str, max_hours: int,
          now: datetime | None = None) -> str:
    """Open a session for a user who just proved who they are; returns the id for the cookie (only here).

    Args:
        actor: the signed-in user (``actor.user_id`` set).
        user_agent, client: what the browser said and where it came from, shown to admins.
        max_hours: the absolute lifetime; idle expiry is checked by ``resolve``.
    """
    if actor.kind != "user" or actor.user_id is None:
        raise InvalidInput(f"{actor.name} is not a user account; only users have browser sessions")
    now = now or utcnow()
    plain = secrets.token_urlsafe(32)
    session.add(BrowserSession(id_hash=digest(plain), user_id=actor.user_id, created_at=now, last_seen_at=now,
                               expires_at=now + timedelta(hours=max_hours), user_agent=user_agent[:255],
                               client=client[:64]))
    session.flush()
    return plain


@dataclass(frozen=True)
class Check:
    """What a cookie is worth now: the actor, or why not.

    ``reason`` is ``ok``, ``unknown`` (no such session), ``revoked`` (ended earlier), or, the one time a
    session ends here, ``idle``, ``expired`` or ``deactivated``.
    """

    actor: Actor | None
    reason: str
    session_id: int | None = None


def resolve(session: Session, *, session_id: str, idle_minutes: int, now: datetime | None = None,
            touch: bool = True) -> Check:
    """The signed-in user a cookie stands for, checked on every dashboard run (the caller commits).

    A session past its idle limit or absolute expiry, or of a deactivated user, is revoked here and its
    end audited as a logout with that reason. ``last_seen_at`` moves at most every ``TOUCH_SECONDS``, and
    not at all with ``touch=False`` (a live panel refreshing itself is not the user's activity).
    """
    now = now or utcnow()
    row = session.scalar(select(BrowserSession).where(BrowserSession.id_hash == digest(session_id)))
    if row is None:
        return Check(None, "unknown")
    if row.revoked_at is not None:
        return Check(None, "revoked", row.id)
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        row.revoked_at = now
        return Check(None, "deactivated", row.id)
    reason = ("expired" if now >= row.expires_at
              else "idle" if now - row.last_seen_at > timedelta(minutes=idle_minutes) else "")
    if reason:
        row.revoked_at = now
        auth.logout(session, actor=auth.actor_for(user), reason=reason)
        return Check(None, reason, row.id)
    if touch and (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        row.last_seen_at = now
    return Check(auth.actor_for(user), "ok", row.id)


def end(session: Session, *, session_id: str, now: datetime | None = None) -> None:
    """Logout: the cookie's session stops working at once, in every tab and for any copy of the cookie."""
    row = session.scalar(select(BrowserSession).where(BrowserSession.id_hash == digest(session_id)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()


@dataclass(frozen=True)
class SessionView:
    id: int
    user: str
    created: datetime
    last_seen: datetime
    expires: datetime
    user_agent: str
    client: str


def list_live(session: Session, *, now: datetime | None = None) -> list[SessionView]:
    """Sessions not revoked and not past their absolute expiry, newest activity first (for the Admin page)."""
    now = now or utcnow()
    rows = session.execute(
        select(BrowserSession, User.username).join(User, User.id == BrowserSession.user_id)
        .where(BrowserSession.revoked_at.is_(None), BrowserSession.expires_at > now)
        .order_by(BrowserSession.last_seen_at.desc()))
    return [SessionView(row.id, name, row.created_at, row.last_seen_at, row.expires_at, row.user_agent, row.client)
            for row, name in rows]


def revoke(session: Session, *, actor: Actor, session_id: int, now: datetime | None = None) -> str:
    """An admin ends one session (a lost laptop, a shared machine); audited. Returns its user's name."""
    auth.require(session, actor, "users.manage", f"session:{session_id}")
    row = session.get(BrowserSession, session_id)
    if row is None:
        raise NotFound(f"no session with id {session_id}")
    user = session.get(User, row.user_id)
    name = user.username if user else str(row.user_id)
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
        audit.record(session, actor, "session.revoked", f"user:{name}", {"session": session_id, "client": row.client})
    return name
