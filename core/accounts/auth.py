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
from core.accounts import login_throttle as throttle
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


@cache
def _common_passwords() -> frozenset[str]:
    from pathlib import Path

    text = Path(__file__).with_name("common_passwords.txt").read_text()
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip() and line[0] != "#")


def check_password(password: str) -> None:
    """At least ``MIN_PASSWORD`` characters and not one of the best-known passwords (the first guesses)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password is {len(password)} characters; at least {MIN_PASSWORD} are required")
    if password.casefold() in _common_passwords():
        raise InvalidInput("that password is on the list of the most common passwords (the first an attacker "
                           "tries); choose another")


def hash_password(password: str) -> str:
    check_password(password)
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


def create_user(session: Session, *, actor: Actor, username: str, role: str, password: str,
                must_change_password: bool = True) -> User:
    """A new account. Its password was set by an admin, so by default its first login must replace it
    (``must_change_password``); pass False only when the account's own person typed it (``cli.py user add
    --keep-password`` in a scripted set-up)."""
    require(session, actor, "users.manage", f"user:{username}")
    _check_username(username)
    check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, created_by=actor.name,
                must_change_password=must_change_password)
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.created", f"user:{username}",
                 {"role": role, "must_change_password": must_change_password})
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
    if actor.name != username:  # an admin set it: the person chooses their own at the next login
        user.must_change_password = True
    user.failed_logins, user.locked_until = 0, None
    throttle.clear(session, throttle.account_key(username))
    end_sessions(session, user_id=user.id)
    audit.record(session, actor, "user.password_reset", f"user:{username}", {})


def password_change_due(session: Session, user_id: int) -> bool:
    """Whether this user must choose a new password before anything else (a generated one was shown, or an
    admin set it: a new account, a reset)."""
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
    """End the user's browser sessions at once (see core/accounts/sessions.py); returns how many were live.

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


FAILED = "Wrong username or password."  # every refusal reads alike: unknown, wrong, blocked or deactivated


def login(session: Session, *, username: str, password: str, max_failures: int, lockout_seconds: int,
          client: str = "", now: datetime | None = None) -> LoginResult:
    """Check a password (the caller commits either way, so failures count).

    Every refusal gives the same message and costs the same time. Failures back off exponentially per
    account and per client address (``core.accounts.login_throttle``); a blocked account still lets its owner in
    from an address it signed in from before. Failures are audited once per account (or, for unknown
    names, per address) and window, and when a block starts: not one chain append per guess.
    """
    now = now or utcnow()
    user = session.scalar(select(User).where(User.username == username))
    akey = throttle.account_key(username)
    # per address, failures with names no account has are counted apart from those against real accounts
    ckey = (throttle.client_key(client) if user is not None else throttle.unknown_client_key(client)) \
        if client else None
    known = bool(client) and user is not None and throttle.is_known(session, username, client, now=now)
    pkey = throttle.pair_key(username, client) if known else None
    if known:  # the owner from an address they signed in from: only that pair's own backoff applies
        blocked = throttle.blocked_until(session, str(pkey), now) is not None
    else:
        blocked = (throttle.blocked_until(session, akey, now) is not None
                   or (ckey is not None and throttle.blocked_until(session, ckey, now) is not None))
    if blocked:
        _burn_time(password)
        return LoginResult(None, FAILED)  # not counted, not audited: the block's start was
    if user is None or not user.active or not _password_matches(user.password_hash, password):
        if user is None or not user.active:
            _burn_time(password)
        reason = "unknown user" if user is None else "deactivated" if not user.active else "wrong password"
        _record_failure(session, username=username, user=user, reason=reason, akey=akey, ckey=ckey, client=client,
                        now=now, max_failures=max_failures, lockout_seconds=lockout_seconds)
        if pkey is not None:
            throttle.fail(session, pkey, now=now, threshold=max_failures * throttle.CLIENT_FACTOR,
                          base_seconds=lockout_seconds)
        return LoginResult(None, FAILED)
    before = throttle.clear(session, akey)
    if pkey is not None:
        throttle.clear(session, pkey)
    if client:
        throttle.remember(session, username, client, now=now)
        throttle.purge_expired(session, now=now)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    audit.record(session, username, "login.ok", f"user:{username}", {"failures_before": before} if before else {})
    return LoginResult(actor_for(user), "Welcome.")


def _record_failure(session: Session, *, username: str, user: User | None, reason: str, akey: str,
                    ckey: str | None, client: str, now: datetime, max_failures: int, lockout_seconds: int) -> None:
    account = throttle.fail(session, akey, now=now, threshold=max_failures, base_seconds=lockout_seconds)
    address = (throttle.fail(session, ckey, now=now, threshold=max_failures * throttle.CLIENT_FACTOR,
                             base_seconds=lockout_seconds) if ckey else None)
    if user is not None:  # shown on the Admin page
        user.failed_logins = account.failures
        user.locked_until = now + timedelta(seconds=account.blocked_seconds) if account.blocked_seconds else None
    # Unknown names are aggregated per address (a spray of made-up names is one event a window), else per
    # typed name; known accounts per account.
    first = account if user is not None or address is None else address
    if not (first.new_window or first.block_started or account.block_started):
        return
    details: dict[str, object] = {"reason": reason, "failures": account.failures}
    if first.previous:
        details["failures_in_previous_window"] = first.previous
    if account.blocked_seconds:
        details["locked_for_seconds"] = account.blocked_seconds
    if address is not None:
        details["client"] = client[:64]
        details["client_failures"] = address.failures
    if user is None:
        # a short hash, not the typed text (a password typed into the username field would be shown to every
        # reader); the same typed name gives the same hash, so repeated attempts still line up
        typed = "#" + hashlib.sha256(username.encode()).hexdigest()[:12]
        audit.record(session, f"anonymous:{typed}", "login.failed", f"user:{typed}", details)
    else:
        audit.record(session, username, "login.failed", f"user:{username}", details)


def unlock(session: Session, *, actor: Actor, username: str) -> int:
    """Lift an account's login block (``cli.py user unlock NAME``): the way back in for an admin whom
    someone keeps locked out. Returns the failures that were counted."""
    require(session, actor, "users.manage", f"user:{username}")
    user = _get_user(session, username)
    failures = throttle.clear(session, throttle.account_key(username))
    # and the addresses it signed in from (its browser sessions', kept with their client address)
    clients = sorted({c for c in session.scalars(select(BrowserSession.client).where(
        BrowserSession.user_id == user.id)) if c})
    lifted = 0
    for client in clients:
        for key in (throttle.client_key(client), throttle.unknown_client_key(client),
                    throttle.pair_key(username, client)):
            lifted += throttle.clear(session, key)
    user.failed_logins, user.locked_until = 0, None
    audit.record(session, actor, "user.unlocked", f"user:{username}",
                 {"failures": failures, "addresses": len(clients), "address_failures": lifted})
    return failures + lifted


def logout(session: Session, *, actor: Actor, reason: str = "logout") -> None:
    audit.record(session, actor, "logout", f"user:{actor.name}", {"reason": reason})


# -- API tokens ----------------------------------------------------------------------------------

def _token_digest(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(token.encode()).hexdigest()


TOKEN_DAYS = 90  # a new token's default lifetime
USE_WRITE_SECONDS = 60  # last_used_at is written at most this often (a predict call is not a DB write)
TOKEN_REFUSED = "the API token is unknown, revoked or expired, or its owner is deactivated"


def create_token(session: Session, *, actor: Actor, role: str, name: str = "", owner: str | None = None,
                 expires_days: int | None = TOKEN_DAYS) -> tuple[str, ApiToken]:
    """A new API token. The plain token is returned only here; the store keeps its hash.

    It acts for ``owner`` (default: the creating user), never above the owner's role, and dies with the
    owner's deactivation; separation of duties sees the owner behind it. ``expires_days`` None or 0: never.
    Names are unique: a token's name is its identity in the audit log and in feedback binding.
    """
    require(session, actor, "tokens.manage", f"token:{name}")
    check_role(role)
    name = name or f"token-{secrets.token_hex(3)}"
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise InvalidInput(f"a token named {name!r} already exists (names identify tokens in the audit log and in "
                           "feedback, even once revoked); choose another name")
    if expires_days is not None and not 0 <= expires_days <= 3650:
        raise InvalidInput(f"expiry of {expires_days} days is not allowed: use 1-3650 days, or 0 for never")
    owner_user = None
    if owner:
        owner_user = _get_user(session, owner)
    elif actor.kind == "user" and actor.user_id is not None:
        owner_user = session.get(User, actor.user_id)
    if owner_user is not None:
        if not owner_user.active:
            raise InvalidInput(f"{owner_user.username} is deactivated and cannot own a token")
        if ROLES.index(role) > ROLES.index(owner_user.role):
            raise InvalidInput(f"a token of {owner_user.username} (role {owner_user.role!r}) cannot have role "
                               f"{role!r}: a token never exceeds its owner's role")
    now = utcnow()
    plain = "lo_" + secrets.token_urlsafe(32)
    row = ApiToken(name=name, prefix=plain[:9], token_hash=_token_digest(plain), role=role, created_by=actor.name,
                   owner_id=owner_user.id if owner_user else None,
                   expires_at=now + timedelta(days=expires_days) if expires_days else None)
    session.add(row)
    session.flush()
    audit.record(session, actor, "token.created", f"token:{row.id}",
                 {"name": row.name, "role": role, "owner": owner_user.username if owner_user else None,
                  "expires_at": row.expires_at.isoformat() if row.expires_at else None})
    return plain, row


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> None:
    require(session, actor, "tokens.manage", f"token:{token_id}")
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "token.revoked", f"token:{token_id}", {"name": row.name})


@dataclass(frozen=True)
class TokenView:
    """A token as the Admin page lists it (never its hash)."""

    id: int
    name: str
    prefix: str
    role: str
    owner: str | None
    owner_role: str | None
    owner_active: bool | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.owner_active is False:
            return "owner deactivated"
        return "active"


def list_tokens(session: Session) -> list[TokenView]:
    rows = session.execute(select(ApiToken, User).outerjoin(User, User.id == ApiToken.owner_id).order_by(ApiToken.id))
    return [TokenView(t.id, t.name, t.prefix, t.role, u.username if u else None, u.role if u else None,
                      u.active if u else None, t.created_by, t.created_at, t.last_used_at, t.expires_at, t.revoked_at)
            for t, u in rows]


def actor_for_token(session: Session, token: str, *, now: datetime | None = None) -> Actor:
    """The actor a presented token acts as (its role capped by its owner's current role); records its use
    at most once a minute. Unknown, revoked, expired and ownerless-by-deactivation read alike."""
    now = now or utcnow()
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(token)))
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthError(TOKEN_REFUSED)
    role = row.role
    if row.owner_id is not None:
        owner = session.get(User, row.owner_id)
        if owner is None or not owner.active:
            raise AuthError(TOKEN_REFUSED)
        role = min(role, owner.role, key=ROLES.index)
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= USE_WRITE_SECONDS:
        row.last_used_at = now
    return Actor(name=f"token:{row.name}", role=role, kind="token", user_id=row.owner_id)


def token_names_of(session: Session, username: str) -> list[str]:
    """The actor names (``token:NAME``) of the tokens ``username`` owns: what they did through them."""
    return ["token:" + n for n in session.scalars(select(ApiToken.name).join(User, ApiToken.owner_id == User.id)
                                                  .where(User.username == username))]


def ownerless_token(session: Session, name: str) -> bool:
    """Whether ``name`` is a token acting for no one (``token:NAME`` with no owner: made by a version before
    owners were required). Such a token is no person: it never approves and never counts for four-eyes."""
    if not name.startswith("token:"):
        return False
    owner = session.scalar(select(ApiToken.owner_id).where(ApiToken.name == name.removeprefix("token:")))
    return owner is None


def person_behind(session: Session, name: str) -> str:
    """The user an actor name stands for: a token's owner for ``token:NAME``, else the name itself.

    Separation of duties compares these, so an approver cannot train through a scientist token they own
    and then approve their own version."""
    if not name.startswith("token:"):
        return name
    owner = session.scalar(select(User.username).join(ApiToken, ApiToken.owner_id == User.id)
                           .where(ApiToken.name == name.removeprefix("token:")))
    return owner or name
