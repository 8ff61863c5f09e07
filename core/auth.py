"""Accounts, roles, API tokens and the one permission check every mutating operation calls."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.actors import ROLES, Actor
from core.errors import AuthError, InvalidInput, NotFound, PermissionDenied
from db.models import ApiToken, BrowserSession, User, utcnow

if TYPE_CHECKING:
    from argon2 import PasswordHasher

# The least role each operation needs. Every mutating core function calls ``require`` with one.
PERMISSIONS: dict[str, str] = {
    "read": "viewer",
    "datasets.write": "scientist",
    "training.launch": "scientist",
    "jobs.launch": "scientist",
    "jobs.maintenance": "admin",  # queue retention, audit verification, schedule sync, the performance watch
    "jobs.cancel": "scientist",
    "models.edit": "scientist",
    "model_cards.edit": "scientist",
    "models.request_promotion": "scientist",
    "models.promote": "approver",
    "models.approve": "approver",
    "models.rollback": "approver",
    "predict": "viewer",
    "feedback.write": "scientist",
    "drift.run": "scientist",
    "models.force_promote": "admin",
    "users.manage": "admin",
    "tokens.manage": "admin",
    "audit.checkpoint": "admin",  # sign the audit chain's head now (core.audit_checkpoints)
    "schedules.manage": "admin",
    "policies.manage": "admin",
    "alerts.manage": "admin",
    "sources.manage": "admin",
}
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 8


@cache
def _hasher() -> PasswordHasher:  # argon2 is imported lazily
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password is {len(password)} characters; at least {MIN_PASSWORD} are required")
    return _hasher().hash(password)


def _password_matches(stored_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH: list[str] = []


def _burn_time(password: str) -> None:
    """Spend what a real check costs, so unknown usernames cannot be told apart by timing."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher().hash(secrets.token_hex(8)))
    _password_matches(_DUMMY_HASH[0], password)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is unknown; roles are: {', '.join(ROLES)}")
    return role


def require(session: Session, actor: Actor, permission: str, subject: str = "") -> None:
    """Refuse (and audit the refusal) unless ``actor``'s role allows ``permission``.

    The refusal is recorded after the caller's transaction rolls back (see LeanOpsError), so
    it survives the rollback and never waits on locks the caller holds.
    """
    needed = PERMISSIONS[permission]
    if actor.at_least(needed):
        return
    denied = PermissionDenied(f"{actor.name} has role {actor.role!r}, which may not {permission}; "
                              f"it needs {needed!r} or higher")
    denied.after_rollback.append(lambda own: audit.record(
        own, actor, "permission.denied", subject or permission,
        {"permission": permission, "role": actor.role, "needs": needed}))
    raise denied


# -- users ---------------------------------------------------------------------------------------

def actor_for(user: User) -> Actor:
    return Actor(name=user.username, role=user.role, kind="user", user_id=user.id)


def _get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def bootstrap_admin(session: Session, *, username: str, password: str | None) -> str | None:
    """On an empty DB, create the first admin. Returns the password when it was generated."""
    if count_users(session):
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    _check_username(username)
    # A generated password has been on a terminal: it works for one login, which must replace it.
    session.add(User(username=username, password_hash=hash_password(password), role="admin",
                     created_by="system:bootstrap", must_change_password=generated is not None))
    audit.record(session, "system:bootstrap", "user.created", f"user:{username}",
                 {"role": "admin", "password": "generated" if generated else "from LEANOPS_ADMIN_PASSWORD"})
    return generated


def _check_username(username: str) -> None:
    if not USERNAME_RE.match(username or ""):
        raise InvalidInput(f"username {username!r} is not allowed: use 2-64 letters, digits, '.', '_', '-' or '@'")


def create_user(session: Session, *, actor: Actor, username: str, role: str, password: str) -> User:
    require(session, actor, "users.manage", f"user:{username}")
    _check_username(username)
    check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, created_by=actor.name)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.created", f"user:{username}", {"role": role})
    return user


def set_role(session: Session, *, actor: Actor, username: str, role: str) -> None:
    require(session, actor, "users.manage", f"user:{username}")
    check_role(role)
    user = _get_user(session, username)
    _keep_an_admin(session, user, new_role=role, new_active=user.active)
    old, user.role = user.role, role
    if old != role:
        end_sessions(session, user_id=user.id)
    audit.record(session, actor, "user.role_changed", f"user:{username}", {"from": old, "to": role})


def reset_password(session: Session, *, actor: Actor, username: str, password: str) -> None:
    if actor.name != username:
        require(session, actor, "users.manage", f"user:{username}")
    user = _get_user(session, username)
    user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    end_sessions(session, user_id=user.id)
    audit.record(session, actor, "user.password_reset", f"user:{username}", {})


def password_change_due(session: Session, user_id: int) -> bool:
    """Whether this user must choose a new password before anything else (a generated one was shown)."""
    return bool(session.scalar(select(User.must_change_password).where(User.id == user_id)))


def change_password(session: Session, *, actor: Actor, current: str, new: str,
                    keep_session_hash: str | None = None) -> None:
    """The signed-in user replaces their own password; the current one is asked again.

    Clears ``must_change_password``. A wrong current password or an unchanged one is refused. Every other
    browser session of the user ends (``keep_session_hash``: the one making the change stays signed in).
    """
    if actor.kind != "user":
        raise InvalidInput(f"{actor.name} is not a user account; only users have a password to change")
    user = _get_user(session, actor.name)
    if not _password_matches(user.password_hash, current):
        raise InvalidInput("the current password is wrong")
    if new == current:
        raise InvalidInput("the new password is the current one; choose a different password")
    forced = user.must_change_password
    user.password_hash = hash_password(new)
    user.must_change_password = False
    end_sessions(session, user_id=user.id, keep_hash=keep_session_hash)
    audit.record(session, actor, "user.password_changed", f"user:{user.username}", {"forced": forced})


def set_active(session: Session, *, actor: Actor, username: str, active: bool) -> None:
    require(session, actor, "users.manage", f"user:{username}")
    user = _get_user(session, username)
    _keep_an_admin(session, user, new_role=user.role, new_active=active)
    user.active = active
    if not active:
        end_sessions(session, user_id=user.id)
    audit.record(session, actor, "user.activated" if active else "user.deactivated", f"user:{username}", {})


def _keep_an_admin(session: Session, user: User, *, new_role: str, new_active: bool) -> None:
    if user.role != "admin" or (new_role == "admin" and new_active):
        return
    others = session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.active.is_(True), User.id != user.id)) or 0
    if not others:
        raise InvalidInput(f"{user.username} is the last active admin; make another admin first")


def end_sessions(session: Session, *, user_id: int, keep_hash: str | None = None) -> int:
    """End the user's browser sessions at once (see core/sessions.py); returns how many were live.

    Called when a password, a role or the active flag changes, so a stolen or stale cookie dies with it.
    """
    query = update(BrowserSession).where(BrowserSession.user_id == user_id, BrowserSession.revoked_at.is_(None))
    if keep_hash is not None:
        query = query.where(BrowserSession.id_hash != keep_hash)
    result = session.execute(query.values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def current_actor(session: Session, user_id: int) -> Actor | None:
    """The signed-in user as they are now (role changes apply at once; deactivated → None)."""
    user = session.get(User, user_id)
    return actor_for(user) if user is not None and user.active else None


# -- login ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    actor: Actor | None
    message: str


def login(session: Session, *, username: str, password: str, max_failures: int, lockout_seconds: int,
          now: datetime | None = None) -> LoginResult:
    """Check a password. Failures are counted and audited (the caller commits either way)."""
    now = now or utcnow()
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        _burn_time(password)
        # a short hash, not the typed text (a password typed into the username field would be shown to every
        # reader); the same typed name gives the same hash, so repeated attempts still line up
        typed = "#" + hashlib.sha256(username.encode()).hexdigest()[:12]
        audit.record(session, f"anonymous:{typed}", "login.failed", f"user:{typed}",
                     {"reason": "unknown user"})
        return LoginResult(None, "Wrong username or password.")
    if not user.active:
        _burn_time(password)
        audit.record(session, username, "login.failed", f"user:{username}", {"reason": "deactivated"})
        return LoginResult(None, "This account is deactivated; ask an admin.")
    if user.locked_until is not None and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        audit.record(session, username, "login.failed", f"user:{username}", {"reason": "locked"})
        return LoginResult(None, f"Too many failed attempts: this account is locked for {wait} more seconds.")
    if not _password_matches(user.password_hash, password):
        user.failed_logins += 1
        details = {"reason": "wrong password", "failures": user.failed_logins}
        message = "Wrong username or password."
        if user.failed_logins >= max_failures:
            user.locked_until = now + timedelta(seconds=lockout_seconds)
            user.failed_logins = 0
            details["locked_for_seconds"] = lockout_seconds
            message = f"Too many failed attempts: this account is locked for {lockout_seconds} seconds."
        audit.record(session, username, "login.failed", f"user:{username}", details)
        return LoginResult(None, message)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    audit.record(session, username, "login.ok", f"user:{username}", {})
    return LoginResult(actor_for(user), "Welcome.")


def logout(session: Session, *, actor: Actor, reason: str = "logout") -> None:
    audit.record(session, actor, "logout", f"user:{actor.name}", {"reason": reason})


# -- API tokens ----------------------------------------------------------------------------------

def _token_digest(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, actor: Actor, role: str, name: str = "") -> tuple[str, ApiToken]:
    """A new API token. The plain token is returned only here; the store keeps its hash."""
    require(session, actor, "tokens.manage", f"token:{name}")
    check_role(role)
    plain = "lo_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name or f"token-{secrets.token_hex(3)}", prefix=plain[:9], token_hash=_token_digest(plain),
                   role=role, created_by=actor.name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "token.created", f"token:{row.id}", {"name": row.name, "role": role})
    return plain, row


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> None:
    require(session, actor, "tokens.manage", f"token:{token_id}")
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "token.revoked", f"token:{token_id}", {"name": row.name})


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def actor_for_token(session: Session, token: str) -> Actor:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(token)))
    if row is None or row.revoked_at is not None:
        raise AuthError("the API token is unknown or revoked")
    return Actor(name=f"token:{row.name}", role=row.role, kind="token")
