"""Failed-login counters with exponential backoff, per account and per client address (``login_throttle``).

A key counts the failures of one window (``WINDOW`` after its last failure it starts again). From
``threshold`` failures on, each further failure blocks the key for ``base`` seconds doubled per failure,
up to ``MAX_BLOCK``: guessing slows to one try an hour per account and per address. Attempts while a key
is blocked are refused without being counted (an attacker cannot push a block out for ever) and without
an audit append each (``core.accounts.auth.login`` records one event per key and window, and one when a block starts).

An account's block would let anyone lock its owner out, so the client addresses an account signed in from
successfully are remembered (``known`` rows, ``KNOWN_FOR``): from there the owner still gets in while the
account or the address is blocked (that pair has a backoff of its own, ``pair_key``). Per address, failures
with unknown names (``unknown_client_key``) are counted apart from failures against real accounts
(``client_key``): made-up names never block an account. ``cli.py user unlock NAME`` clears the account's block
and those of the addresses it signed in from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import LoginThrottle

WINDOW = timedelta(hours=24)
MAX_BLOCK = timedelta(hours=1)
KNOWN_FOR = timedelta(days=30)
CLIENT_FACTOR = 4  # an address may fail this many times an account's threshold (people share addresses)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def account_key(username: str) -> str:
    # a hash: the table never holds a typed name (which may be a password typed in the wrong field)
    return "user:" + _digest(username)


def client_key(client: str) -> str:
    """An address's failures against accounts that exist."""
    return "client:" + client[:120]


def unknown_client_key(client: str) -> str:
    """An address's failures with names no account has: counted apart, so a spray of made-up names blocks
    only more made-up names from there, never the real accounts."""
    return "client-unknown:" + client[:120]


def pair_key(username: str, client: str) -> str:
    """Failures of one account from an address it signed in from before (its owner's way in while the account
    or the address is blocked, itself limited so it is no way around the backoff)."""
    return "pair:" + _digest(username + "\n" + client)


def known_key(username: str, client: str) -> str:
    return "known:" + _digest(username + "\n" + client)


@dataclass(frozen=True)
class Failure:
    failures: int  # in this window, this one included
    new_window: bool  # the first failure of a window (audited)
    previous: int  # failures of the window that ended before this one
    blocked_seconds: int | None  # this failure blocked the key for so long
    block_started: bool  # the first block of this window (audited)


def blocked_until(session: Session, key: str, now: datetime) -> datetime | None:
    row = session.get(LoginThrottle, key)
    if row is None or row.blocked_until is None or row.blocked_until <= now:
        return None
    return row.blocked_until


def fail(session: Session, key: str, *, now: datetime, threshold: int, base_seconds: int) -> Failure:
    """Count one failure of ``key`` (the caller checked it is not blocked)."""
    row = session.get(LoginThrottle, key, with_for_update=True)
    previous, new_window = 0, False
    if row is None:
        row = LoginThrottle(key=key, failures=0, first_failed_at=now, last_failed_at=now)
        session.add(row)
        new_window = True
    elif now - row.last_failed_at > WINDOW:
        previous, new_window = row.failures, True
        row.failures, row.first_failed_at, row.blocked_until = 0, now, None
    row.failures += 1
    row.last_failed_at = now
    seconds = None
    if row.failures >= threshold:
        block = min(timedelta(seconds=base_seconds) * 2 ** min(row.failures - threshold, 20), MAX_BLOCK)
        row.blocked_until = now + block
        seconds = int(block.total_seconds())
    session.flush()
    return Failure(row.failures, new_window, previous, seconds, row.failures == threshold)


def clear(session: Session, key: str) -> int:
    """Forget ``key``'s failures and block; returns how many failures there were."""
    row = session.get(LoginThrottle, key)
    if row is None:
        return 0
    failures = row.failures
    session.delete(row)
    session.flush()
    return failures


def remember(session: Session, username: str, client: str, *, now: datetime) -> None:
    """``client`` signed in as ``username``: it may still do so while the account is blocked."""
    key = known_key(username, client)
    row = session.get(LoginThrottle, key)
    if row is None:
        session.add(LoginThrottle(key=key, failures=0, first_failed_at=now, last_failed_at=now,
                                  blocked_until=now + KNOWN_FOR))
    else:
        row.last_failed_at, row.blocked_until = now, now + KNOWN_FOR  # here blocked_until means "known until"
    session.flush()


def is_known(session: Session, username: str, client: str, *, now: datetime) -> bool:
    return blocked_until(session, known_key(username, client), now) is not None


def purge_expired(session: Session, *, now: datetime) -> int:
    """Rows whose window ended and whose block ended (kept small; called now and then by ``login``)."""
    result = session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failed_at < now - max(WINDOW, KNOWN_FOR),
        (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < now)))
    return int(getattr(result, "rowcount", 0) or 0)
