"""Accounts, login with lockout, role checks that audit their refusals, API tokens, last-admin guard."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts import auth
from core.actors import Actor, cli_actor
from core.errors import AuthError, InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from db.models import ApiToken, AuditEvent, User, utcnow
from tests.support.factories import admin_actor, make_user

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIMITS = {"max_failures": 3, "lockout_seconds": 60}


def audit_rows(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def chain_ok(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return audit.verify(session).ok


def login(factory: sessionmaker[Session], username: str, password: str, now: datetime = T0) -> auth.LoginResult:
    """One login attempt, committed like the login page does (failures count even though they fail)."""
    with transaction(factory) as session:
        return auth.login(session, username=username, password=password, now=now, **LIMITS)


# -- bootstrap -----------------------------------------------------------------------------------

def test_bootstrap_generates_a_password_once(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        generated = auth.bootstrap_admin(session, username="root", password=None)
    with transaction(factory) as session:
        again = auth.bootstrap_admin(session, username="root", password=None)

    assert generated and len(generated) >= 12
    assert again is None
    with factory() as session:
        users = session.scalars(select(User)).all()
    assert [(u.username, u.role) for u in users] == [("root", "admin")]
    assert login(factory, "root", generated).actor == Actor("root", "admin", "user", users[0].id)
    created = audit_rows(factory, "user.created")
    assert len(created) == 1 and created[0].details["password"] == "generated"
    assert generated not in str(created[0].details)


def test_bootstrap_uses_the_given_password(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        assert auth.bootstrap_admin(session, username="admin", password="admin-pass-123") is None
    assert login(factory, "admin", "admin-pass-123").actor is not None
    with factory() as session:  # a password the operator chose is theirs to keep
        assert not auth.password_change_due(session, session.scalar(select(User.id)))


def test_a_generated_password_must_be_changed_once(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        generated = auth.bootstrap_admin(session, username="root", password=None)
    assert generated is not None
    root = login(factory, "root", generated).actor
    assert root is not None and root.user_id is not None
    with factory() as session:
        assert auth.password_change_due(session, root.user_id)

    for current, new, reason in ((generated + "x", "mine-and-long", "the current password is wrong"),
                                 (generated, generated, "the new password is the current one"),
                                 (generated, "short", "at least 8 are required")):
        with pytest.raises(InvalidInput, match=reason), transaction(factory) as session:
            auth.change_password(session, actor=root, current=current, new=new)
    with pytest.raises(InvalidInput, match="not a user account"), transaction(factory) as session:
        auth.change_password(session, actor=cli_actor(), current=generated, new="mine-and-long")
    with factory() as session:
        assert auth.password_change_due(session, root.user_id)  # nothing changed by the refusals

    with transaction(factory) as session:
        auth.change_password(session, actor=root, current=generated, new="mine-and-long")
    with factory() as session:
        assert not auth.password_change_due(session, root.user_id)
    assert login(factory, "root", generated).actor is None
    assert login(factory, "root", "mine-and-long").actor is not None
    changed = audit_rows(factory, "user.password_changed")
    assert [(e.actor, e.details) for e in changed] == [("root", {"forced": True})]
    assert chain_ok(factory)


# -- login ---------------------------------------------------------------------------------------

def test_login_ok(factory: sessionmaker[Session]) -> None:
    alice = make_user(factory, "alice", "scientist")
    result = login(factory, "alice", "password-123")
    assert result.actor == alice
    assert result.message == "Welcome."
    [row] = audit_rows(factory, "login.ok")
    assert (row.actor, row.subject) == ("alice", "user:alice")
    with factory() as session:
        assert session.scalar(select(User.last_login_at).where(User.username == "alice")) == T0


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [("alice", "wrong-password", "wrong password"), ("nobody", "password-123", "unknown user")],
)
def test_login_refused_with_the_same_message(factory: sessionmaker[Session], username: str, password: str,
                                             reason: str) -> None:
    make_user(factory, "alice", "scientist")
    result = login(factory, username, password)
    # Unknown user and wrong password read alike, so usernames can't be probed.
    assert (result.actor, result.message) == (None, "Wrong username or password.")
    [row] = audit_rows(factory, "login.failed")
    assert row.details["reason"] == reason
    shown = username if username == "alice" else "#" + hashlib.sha256(username.encode()).hexdigest()[:12]
    assert row.subject == f"user:{shown}"
    assert audit_rows(factory, "login.ok") == []


def test_a_password_typed_as_the_username_is_never_recorded(factory: sessionmaker[Session]) -> None:
    make_user(factory, "alice", "scientist")
    for _ in range(2):  # the same typed text gives the same short hash; repeats within a window are one event
        login(factory, "Tr0ub4dor&3-horse", "")
    rows = audit_rows(factory, "login.failed")
    digest = hashlib.sha256(b"Tr0ub4dor&3-horse").hexdigest()[:12]
    assert [(r.actor, r.subject) for r in rows] == [(f"anonymous:#{digest}", f"user:#{digest}")]
    with factory() as session:
        stored = " ".join(f"{e.actor} {e.subject} {e.details_json}" for e in session.scalars(select(AuditEvent)))
    assert "Tr0ub4dor" not in stored


def test_login_deactivated(factory: sessionmaker[Session]) -> None:
    make_user(factory, "alice", "scientist")
    with transaction(factory) as session:
        auth.set_active(session, actor=admin_actor(), username="alice", active=False)
    result = login(factory, "alice", "password-123")
    assert (result.actor, result.message) == (None, "Wrong username or password.")  # no hint that it exists
    assert audit_rows(factory, "login.failed")[-1].details["reason"] == "deactivated"


def test_backoff_after_max_failures_doubles_and_reads_like_any_failure(factory: sessionmaker[Session]) -> None:
    make_user(factory, "alice", "scientist")
    first = [login(factory, "alice", "wrong-password", T0 + timedelta(seconds=i)).message for i in range(3)]
    assert first == ["Wrong username or password."] * 3

    # Blocked from T0+2s for 60 s: the right password is refused too, with the same message, and not counted.
    locked = login(factory, "alice", "password-123", T0 + timedelta(seconds=12))
    assert (locked.actor, locked.message) == (None, "Wrong username or password.")
    # The next failure after the block doubles it (120 s from T0+63s).
    assert login(factory, "alice", "wrong-password", T0 + timedelta(seconds=63)).actor is None
    assert login(factory, "alice", "password-123", T0 + timedelta(seconds=150)).actor is None
    assert login(factory, "alice", "password-123", T0 + timedelta(seconds=184)).actor is not None
    # One event when the window opened, one when the first block started: not one per guess.
    rows = audit_rows(factory, "login.failed")
    assert [(r.details["failures"], r.details.get("locked_for_seconds")) for r in rows] == [(1, None), (3, 60)]
    assert audit_rows(factory, "login.ok")[-1].details == {"failures_before": 4}
    with factory() as session:
        user = session.scalar(select(User).where(User.username == "alice"))
        assert (user.failed_logins, user.locked_until) == (0, None)


def test_a_blocked_account_still_admits_its_owner_from_a_known_address(factory: sessionmaker[Session]) -> None:
    make_user(factory, "root", "admin")

    def attempt(password: str, client: str, at: int) -> auth.LoginResult:
        with transaction(factory) as session:
            return auth.login(session, username="root", password=password, client=client,
                              now=T0 + timedelta(seconds=at), **LIMITS)

    assert attempt("password-123", "10.0.0.5", 0).actor is not None  # the admin's usual address
    for i in range(6):  # someone else hammers the account from elsewhere
        attempt(f"guess-{i}-xxxx", "203.0.113.9", 1 + i)
    assert attempt("password-123", "198.51.100.7", 8).actor is None, "a new address waits out the block"
    assert attempt("password-123", "10.0.0.5", 9).actor is not None, "the owner's address still gets in"
    with transaction(factory) as session:
        cleared = auth.unlock(session, actor=cli_actor(), username="root")
    assert cleared == 0  # the successful login above cleared the account's count already
    assert attempt("password-123", "198.51.100.7", 10).actor is not None


def test_made_up_names_from_an_address_never_block_its_real_accounts(factory: sessionmaker[Session]) -> None:
    """Per address, failures with unknown names are counted apart from failures against real accounts: a spray
    of made-up names blocks more made-up names from there, never an account (issue 27 item 5)."""
    make_user(factory, "alice", "scientist")
    for i in range(LIMITS["max_failures"] * 4):  # made-up names, aggregated per address
        with transaction(factory) as session:
            auth.login(session, username=f"nobody-{i}", password="x" * 10, client="203.0.113.9",
                       now=T0 + timedelta(seconds=i), **LIMITS)
    # one event when the address's window opened, one when its block started
    assert [r.details["client_failures"] for r in audit_rows(factory, "login.failed")] == [1, 12]
    with transaction(factory) as session:  # made-up names stay blocked from there
        assert auth.login(session, username="nobody-x", password="x" * 10, client="203.0.113.9",
                          now=T0 + timedelta(seconds=30), **LIMITS).actor is None
    with transaction(factory) as session:  # a real account, never signed in from there before, still gets in
        assert auth.login(session, username="alice", password="password-123", client="203.0.113.9",
                          now=T0 + timedelta(seconds=31), **LIMITS).actor is not None


def test_an_address_that_keeps_failing_real_accounts_is_blocked_but_not_for_their_owners(
        factory: sessionmaker[Session]) -> None:
    for name in ("alice", "bob", "carol"):
        make_user(factory, name, "scientist")
    with transaction(factory) as session:  # carol signed in from the shared office address before
        assert auth.login(session, username="carol", password="password-123", client="203.0.113.9",
                          now=T0, **LIMITS).actor is not None
    for i in range(LIMITS["max_failures"] * 4):  # someone there guesses alice's and bob's passwords
        with transaction(factory) as session:
            auth.login(session, username=("alice", "bob")[i % 2], password=f"guess-{i}-xxxx", client="203.0.113.9",
                       now=T0 + timedelta(seconds=1 + i), **LIMITS)
    with transaction(factory) as session:  # the address is blocked for accounts not known there
        assert auth.login(session, username="bob", password="password-123", client="203.0.113.9",
                          now=T0 + timedelta(seconds=30), **LIMITS).actor is None
    with transaction(factory) as session:  # carol, who signed in from there, keeps getting in
        assert auth.login(session, username="carol", password="password-123", client="203.0.113.9",
                          now=T0 + timedelta(seconds=31), **LIMITS).actor is not None
    with transaction(factory) as session:  # elsewhere bob is fine (his own account block aside)
        assert auth.login(session, username="carol", password="password-123", client="192.0.2.1",
                          now=T0 + timedelta(seconds=32), **LIMITS).actor is not None


def test_a_known_address_is_no_way_around_the_backoff(factory: sessionmaker[Session]) -> None:
    make_user(factory, "root", "admin")
    with transaction(factory) as session:
        assert auth.login(session, username="root", password="password-123", client="10.0.0.5", now=T0,
                          **LIMITS).actor is not None
    for i in range(LIMITS["max_failures"] * 4):  # guessing from the owner's own address: that pair backs off
        with transaction(factory) as session:
            auth.login(session, username="root", password=f"guess-{i}-xxxx", client="10.0.0.5",
                       now=T0 + timedelta(seconds=1 + i), **LIMITS)
    with transaction(factory) as session:
        assert auth.login(session, username="root", password="password-123", client="10.0.0.5",
                          now=T0 + timedelta(seconds=20), **LIMITS).actor is None


def test_unlock_lifts_the_blocks_of_the_addresses_the_account_signed_in_from(factory: sessionmaker[Session]) -> None:
    from core.accounts import sessions

    make_user(factory, "alice", "scientist")
    make_user(factory, "bob", "scientist")
    with transaction(factory) as session:  # alice signed in from the office before (a browser session)
        result = auth.login(session, username="alice", password="password-123", client="203.0.113.9", now=T0,
                            **LIMITS)
        assert result.actor is not None
        sessions.start(session, actor=result.actor, user_agent="test", client="203.0.113.9", max_hours=12)
    for i in range(LIMITS["max_failures"] * 4):
        with transaction(factory) as session:
            auth.login(session, username="bob", password=f"guess-{i}-xxxx", client="203.0.113.9",
                       now=T0 + timedelta(seconds=1 + i), **LIMITS)
    with transaction(factory) as session:  # the office is blocked for accounts not known there
        assert auth.login(session, username="bob", password="password-123", client="203.0.113.9",
                          now=T0 + timedelta(seconds=30), **LIMITS).actor is None
    with transaction(factory) as session:
        assert auth.unlock(session, actor=cli_actor(), username="alice") > 0
    assert audit_rows(factory, "user.unlocked")[-1].details["addresses"] == 1
    with transaction(factory) as session:
        auth.unlock(session, actor=cli_actor(), username="bob")
    with transaction(factory) as session:
        assert auth.login(session, username="bob", password="password-123", client="203.0.113.9",
                          now=T0 + timedelta(seconds=31), **LIMITS).actor is not None


def test_unlock_lifts_a_block_and_is_admin_only(factory: sessionmaker[Session]) -> None:
    make_user(factory, "alice", "scientist")
    viewer = make_user(factory, "vera", "viewer")
    for i in range(3):
        login(factory, "alice", "wrong-password", T0 + timedelta(seconds=i))
    with pytest.raises(PermissionDenied), transaction(factory) as session:
        auth.unlock(session, actor=viewer, username="alice")
    with transaction(factory) as session:
        assert auth.unlock(session, actor=cli_actor(), username="alice") == 3
    assert login(factory, "alice", "password-123", T0 + timedelta(seconds=5)).actor is not None
    assert audit_rows(factory, "user.unlocked")[0].details == {"failures": 3, "addresses": 0, "address_failures": 0}


@pytest.mark.parametrize("password", ["password123", "Password1", "QWERTYUIOP", "short"])
def test_common_and_short_passwords_are_refused(factory: sessionmaker[Session], password: str) -> None:
    with pytest.raises(InvalidInput, match="most common passwords|at least 8"), transaction(factory) as session:
        auth.create_user(session, actor=admin_actor(), username="bob", role="viewer", password=password)


def test_success_resets_the_failure_count(factory: sessionmaker[Session]) -> None:
    make_user(factory, "alice", "scientist")
    for _ in range(2):
        login(factory, "alice", "wrong-password")
    assert login(factory, "alice", "password-123").actor is not None
    for _ in range(2):
        assert login(factory, "alice", "wrong-password").message == "Wrong username or password."
    assert chain_ok(factory)


# -- permission checks ---------------------------------------------------------------------------

OPERATIONS: dict[str, tuple[str, Callable[[Session, Actor], object]]] = {
    "create_user": ("users.manage", lambda s, a: auth.create_user(
        s, actor=a, username="mallory", role="admin", password="password-123")),
    "create_token": ("tokens.manage", lambda s, a: auth.create_token(s, actor=a, role="admin", name="sneaky")),
    "set_role": ("users.manage", lambda s, a: auth.set_role(s, actor=a, username=a.name, role="admin")),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_viewer_is_refused_and_the_refusal_is_audited(factory: sessionmaker[Session], operation: str) -> None:
    permission, call = OPERATIONS[operation]
    viewer = make_user(factory, "vera", "viewer")

    with pytest.raises(PermissionDenied, match="vera has role 'viewer'.*needs 'admin'"), \
            transaction(factory) as session:
        call(session, viewer)

    # The caller's transaction rolled back, yet the refusal was kept.
    [row] = audit_rows(factory, "permission.denied")
    assert row.actor == "vera"
    assert row.details == {"permission": permission, "role": "viewer", "needs": "admin"}
    with factory() as session:
        assert session.scalar(select(User.role).where(User.username == "vera")) == "viewer"
        assert session.scalar(select(User).where(User.username == "mallory")) is None
        assert session.scalars(select(ApiToken)).all() == []
    assert chain_ok(factory)


# -- API tokens ----------------------------------------------------------------------------------

def test_token_is_shown_once_and_stored_hashed(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        plain, row = auth.create_token(session, actor=admin_actor(), role="scientist", name="ci")
        token_id = row.id

    with factory() as session:
        stored = session.get(ApiToken, token_id)
        assert stored.token_hash == hashlib.sha256(plain.encode()).hexdigest()
        columns = [getattr(stored, c.key) for c in ApiToken.__table__.columns]
        assert not any(isinstance(v, str) and plain in v for v in columns), "the plain token is stored"
        assert len(stored.prefix) < len(plain) // 3
        assert auth.actor_for_token(session, plain) == Actor("token:ci", "scientist", "token")
    [row] = audit_rows(factory, "token.created")
    assert plain not in str(row.details) and plain not in row.subject


def test_revoked_and_unknown_tokens_are_refused(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        plain, row = auth.create_token(session, actor=admin_actor(), role="viewer")
        token_id = row.id
    with transaction(factory) as session:
        auth.revoke_token(session, actor=admin_actor(), token_id=token_id)

    with factory() as session:
        with pytest.raises(AuthError, match="unknown, revoked or expired"):
            auth.actor_for_token(session, plain)
        with pytest.raises(AuthError, match="unknown, revoked or expired"):
            auth.actor_for_token(session, plain + "x")
    assert len(audit_rows(factory, "token.revoked")) == 1


def test_a_token_belongs_to_its_owner_expires_and_dies_with_the_owner(factory: sessionmaker[Session]) -> None:
    sam = make_user(factory, "sam", "scientist")
    with transaction(factory) as session:
        plain, row = auth.create_token(session, actor=admin_actor(), role="scientist", name="sam-ci", owner="sam")
        assert row.expires_at is not None and (row.expires_at - utcnow()).days in (89, 90)
    with transaction(factory) as session:
        assert auth.actor_for_token(session, plain) == Actor("token:sam-ci", "scientist", "token", sam.user_id)
        [view] = auth.list_tokens(session)
        assert (view.owner, view.owner_role, view.status(utcnow())) == ("sam", "scientist", "active")
        first_use = view.last_used_at
    assert first_use is not None
    with transaction(factory) as session:  # within a minute: no write
        auth.actor_for_token(session, plain, now=first_use + timedelta(seconds=30))
    with factory() as session:
        assert auth.list_tokens(session)[0].last_used_at == first_use
    with transaction(factory) as session:
        auth.actor_for_token(session, plain, now=first_use + timedelta(seconds=61))
    with factory() as session:
        assert auth.list_tokens(session)[0].last_used_at == first_use + timedelta(seconds=61)
        with pytest.raises(AuthError):  # expired
            auth.actor_for_token(session, plain, now=utcnow() + timedelta(days=91))
    with transaction(factory) as session:  # a demoted owner's token is demoted with them
        auth.set_role(session, actor=admin_actor(), username="sam", role="viewer")
    with factory() as session:
        assert auth.actor_for_token(session, plain).role == "viewer"
    with transaction(factory) as session:
        auth.set_active(session, actor=admin_actor(), username="sam", active=False)
    with factory() as session, pytest.raises(AuthError, match="owner is deactivated"):
        auth.actor_for_token(session, plain)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "dup"}, "a token named 'dup' already exists"),
    ({"name": "hi", "owner": "sam", "role": "admin"}, "never exceeds its owner's role"),
    ({"name": "far", "expires_days": 5000}, "1-3650 days"),
    ({"name": "ghost", "owner": "nobody"}, "no user named 'nobody'"),
])
def test_token_names_are_unique_and_never_above_the_owner(factory: sessionmaker[Session], kwargs: dict,
                                                          message: str) -> None:
    make_user(factory, "sam", "scientist")
    with transaction(factory) as session:
        auth.create_token(session, actor=admin_actor(), role="viewer", name="dup", expires_days=0)
    with pytest.raises((InvalidInput, NotFound), match=message), transaction(factory) as session:
        auth.create_token(session, actor=admin_actor(), **({"role": "viewer"} | kwargs))


def test_person_behind_a_token_is_its_owner(factory: sessionmaker[Session]) -> None:
    make_user(factory, "ann", "approver")
    with transaction(factory) as session:
        auth.create_token(session, actor=admin_actor(), role="scientist", name="ann-train", owner="ann")
        auth.create_token(session, actor=admin_actor(), role="scientist", name="nobodys")
    with factory() as session:
        assert auth.person_behind(session, "token:ann-train") == "ann"
        assert auth.person_behind(session, "token:nobodys") == "token:nobodys"
        assert auth.person_behind(session, "ann") == "ann"


# -- the last admin ------------------------------------------------------------------------------

def test_last_active_admin_cannot_be_demoted_or_deactivated(factory: sessionmaker[Session]) -> None:
    make_user(factory, "ada", "admin")
    for change in (lambda s: auth.set_role(s, actor=admin_actor(), username="ada", role="approver"),
                   lambda s: auth.set_active(s, actor=admin_actor(), username="ada", active=False)):
        with pytest.raises(InvalidInput, match="ada is the last active admin"), transaction(factory) as session:
            change(session)

    make_user(factory, "bob", "admin")
    with transaction(factory) as session:
        auth.set_role(session, actor=admin_actor(), username="ada", role="approver")
    with pytest.raises(InvalidInput, match="bob is the last active admin"), transaction(factory) as session:
        auth.set_active(session, actor=admin_actor(), username="bob", active=False)

    with factory() as session:
        roles = {name: role for name, role in session.execute(select(User.username, User.role))}
    assert roles == {"ada": "approver", "bob": "admin"}
    assert [r.details for r in audit_rows(factory, "user.role_changed")] == [{"from": "admin", "to": "approver"}]
