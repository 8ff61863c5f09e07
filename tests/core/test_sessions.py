"""Browser sessions: a cookie's random id whose hash is a row; idle and absolute expiry; every way one ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts import auth, sessions
from core.actors import Actor
from core.errors import InvalidInput, PermissionDenied
from core.platform.database import transaction
from db.models import AuditEvent, BrowserSession
from tests.support.factories import admin_actor, make_user

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
IDLE = 30


def start(factory: sessionmaker[Session], who: Actor, *, now: datetime = T0, max_hours: int = 12) -> str:
    with transaction(factory) as s:
        return sessions.start(s, actor=who, user_agent="Mozilla/5.0 test", client="10.0.0.7", max_hours=max_hours,
                              now=now)


def resolve(factory: sessionmaker[Session], plain: str, now: datetime) -> sessions.Check:
    with transaction(factory) as s:
        return sessions.resolve(s, session_id=plain, idle_minutes=IDLE, now=now)


def test_a_session_signs_its_user_in_and_the_store_keeps_only_the_hash(factory):
    vera = make_user(factory, "vera", "viewer")
    plain = start(factory, vera)
    with factory() as s:
        row = s.scalars(select(BrowserSession)).one()
    assert row.id_hash == sessions.digest(plain) != plain and len(plain) >= 43  # 256 random bits
    assert (row.user_agent, row.client, row.expires_at) == ("Mozilla/5.0 test", "10.0.0.7", T0 + timedelta(hours=12))

    check = resolve(factory, plain, T0 + timedelta(seconds=30))
    assert check.actor == vera and check.reason == "ok"
    with factory() as s:  # a run within TOUCH_SECONDS is no write
        assert s.get(BrowserSession, row.id).last_seen_at == T0
    resolve(factory, plain, T0 + timedelta(minutes=5))
    with factory() as s:
        assert s.get(BrowserSession, row.id).last_seen_at == T0 + timedelta(minutes=5)
    assert resolve(factory, "not-a-session-id", T0).reason == "unknown"


def test_idle_expiry_ends_the_session_once_and_audits_it(factory):
    vera = make_user(factory, "vera", "viewer")
    plain = start(factory, vera)
    assert resolve(factory, plain, T0 + timedelta(minutes=IDLE - 1)).actor == vera  # activity moves the clock
    check = resolve(factory, plain, T0 + timedelta(minutes=2 * IDLE))
    assert (check.actor, check.reason) == (None, "idle")
    assert resolve(factory, plain, T0 + timedelta(minutes=2 * IDLE + 1)).reason == "revoked"
    with factory() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "logout")).all()
    assert [(e.actor, e.details) for e in events] == [("vera", {"reason": "idle"})]


def test_the_absolute_lifetime_ends_even_an_active_session(factory):
    vera = make_user(factory, "vera", "viewer")
    plain = start(factory, vera, max_hours=2)
    for minutes in range(0, 120, 20):  # active every 20 minutes
        assert resolve(factory, plain, T0 + timedelta(minutes=minutes)).actor == vera
    assert resolve(factory, plain, T0 + timedelta(minutes=120)).reason == "expired"


def test_logout_ends_the_session_for_every_copy_of_the_cookie(factory):
    vera = make_user(factory, "vera", "viewer")
    plain, other = start(factory, vera), start(factory, vera)
    with transaction(factory) as s:
        sessions.end(s, session_id=plain, now=T0)
    assert resolve(factory, plain, T0).reason == "revoked"
    assert resolve(factory, other, T0).actor == vera  # another browser of hers is its own session


@pytest.mark.parametrize("change", [
    lambda s: auth.reset_password(s, actor=admin_actor(), username="vera", password="new-password-1"),
    lambda s: auth.set_role(s, actor=admin_actor(), username="vera", role="approver"),
    lambda s: auth.set_active(s, actor=admin_actor(), username="vera", active=False),
], ids=["password reset", "role change", "deactivation"])
def test_account_changes_end_every_session_of_the_user_at_once(factory, change):
    vera, sam = make_user(factory, "vera", "viewer"), make_user(factory, "sam", "scientist")
    hers, his = start(factory, vera), start(factory, sam)
    with transaction(factory) as s:
        change(s)
    assert resolve(factory, hers, T0).actor is None
    assert resolve(factory, his, T0).actor == sam


def test_a_role_change_to_the_same_role_keeps_the_sessions(factory):
    vera = make_user(factory, "vera", "viewer")
    plain = start(factory, vera)
    with transaction(factory) as s:
        auth.set_role(s, actor=admin_actor(), username="vera", role="viewer")
    assert resolve(factory, plain, T0).actor == vera


def test_changing_your_password_ends_your_other_sessions_not_this_one(factory):
    vera = make_user(factory, "vera", "viewer", password="password-123")
    here, elsewhere = start(factory, vera), start(factory, vera)
    with transaction(factory) as s:
        auth.change_password(s, actor=vera, current="password-123", new="password-456",
                             keep_session_hash=sessions.digest(here))
    assert resolve(factory, here, T0).actor == vera
    assert resolve(factory, elsewhere, T0).reason == "revoked"


def test_a_deactivated_user_is_signed_out_even_if_the_session_row_was_left_live(factory):
    vera = make_user(factory, "vera", "viewer")
    plain = start(factory, vera)
    with transaction(factory) as s:  # as if the row had escaped end_sessions
        auth._get_user(s, "vera").active = False
    assert resolve(factory, plain, T0).reason == "deactivated"
    assert resolve(factory, plain, T0).reason == "revoked"


def test_admins_list_and_revoke_sessions_and_others_may_not(factory):
    vera, boss = make_user(factory, "vera", "viewer"), make_user(factory, "boss", "admin")
    plain = start(factory, vera)
    with factory() as s:
        (live,) = sessions.list_live(s, now=T0)
    assert (live.user, live.client) == ("vera", "10.0.0.7")
    with pytest.raises(PermissionDenied, match="vera has role 'viewer'"), transaction(factory) as s:
        sessions.revoke(s, actor=vera, session_id=live.id)
    with transaction(factory) as s:
        assert sessions.revoke(s, actor=boss, session_id=live.id) == "vera"
    assert resolve(factory, plain, T0).reason == "revoked"
    with factory() as s:
        assert sessions.list_live(s, now=T0) == []
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "session.revoked")).one()
    assert (event.actor, event.subject, event.details["session"]) == ("boss", "user:vera", live.id)
    assert plain not in str(event.details)


def test_only_users_get_browser_sessions(factory):
    with pytest.raises(InvalidInput, match="not a user account"), transaction(factory) as s:
        sessions.start(s, actor=Actor("token:ci", "scientist", "token"), user_agent="", client="", max_hours=1)
