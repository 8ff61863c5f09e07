"""Tamper-evident audit log: every event's hash covers the previous hash and its own canonical JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, cast, desc, func, select, update
from sqlalchemy.orm import Session

from core.actors import Actor
from db.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
# Admin configuration (alert channels, SQL sources, users, tokens, the secret key): its details are
# shown to admins only. They are masked when written, but an older row may still hold what is now
# known to be a credential (a Slack webhook URL), and the hash chain forbids rewriting it.
ADMIN_ONLY_ACTIONS = ("alert_channel.", "source.", "user.", "token.", "secrets.")
HIDDEN_DETAILS = {"hidden": "admin configuration: details are shown to admins only"}
_quote = json.encoder.encode_basestring  # the C escaper json.dumps(ensure_ascii=False) uses for str


def dumps_details(details: dict[str, Any]) -> str:
    """Details as canonical JSON text (sorted keys, no spaces): stored as-is, hashed as-is."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def ts_text(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _payload(seq: int, ts: str, actor: str, action: str, subject: str, details_json: str) -> bytes:
    # Equal to json.dumps({...}, sort_keys=True, separators=(",", ":"), ensure_ascii=False), built
    # by hand so verification never parses JSON: that is what makes it fast.
    return ('{"action":' + _quote(action) + ',"actor":' + _quote(actor) + ',"details":' + details_json
            + ',"seq":' + str(seq) + ',"subject":' + _quote(subject) + ',"ts":"' + ts + '"}').encode()


def canonical(seq: int, ts: datetime, actor: str, action: str, subject: str, details: dict[str, Any]) -> bytes:
    """The exact bytes an event's hash covers (sorted keys, no spaces, UTC time to the microsecond)."""
    return _payload(seq, ts_text(ts), actor, action, subject, dumps_details(details))


def chain_hash(prev_hash: str, payload: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def record(
    session: Session,
    actor: Actor | str,
    action: str,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    Appends are serialised by updating the single ``audit_head`` row first: on PostgreSQL that
    row lock makes a concurrent appender wait; on SQLite the update takes the write lock.
    """
    name = actor.name if isinstance(actor, Actor) else actor
    details_json = dumps_details(details or {})
    bump = update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
    seq, prev = session.execute(bump.returning(AuditHead.seq, AuditHead.hash)).one()
    ts = utcnow()
    digest = chain_hash(prev, _payload(seq, ts_text(ts), name, action, subject, details_json))
    event = AuditEvent(seq=seq, ts=ts, actor=name, action=action, subject=subject, details_json=details_json,
                       prev_hash=prev, hash=digest)
    session.add(event)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=digest))
    session.flush()
    return event


def _stored_ts_text(session: Session) -> ColumnElement[str]:
    """The stored timestamp formatted in SQL exactly as ts_text() does (no per-row parsing)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", AuditEvent.ts), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=String)
    # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy always writes the microseconds).
    return func.replace(cast(AuditEvent.ts, String), " ", "T", type_=String) + "Z"


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad: int | None
    reason: str
    checkpoint: int | None = None  # the signed checkpoint that no longer matches (core.audit_checkpoints)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_bad": self.first_bad, "reason": self.reason}


def verify(session: Session, *, progress: Callable[[int, int], None] | None = None,
           batch: int = 20_000, checkpoints: Sequence[tuple[int, int, str]] = ()) -> Verification:
    """Walk the whole chain in order; name the first event that was edited, removed or moved.

    Events appended while the walk runs are not an error: the walk covers the chain up to the head
    it read first; anything past the head read again at the end was appended behind LeanOps' back.

    ``checkpoints`` are signed ``(n, seq, hash)`` heads in order (``core.audit_checkpoints``, read before
    this reads the head): a chain rewritten consistently (every later hash recomputed) still links, but
    no longer reaches a checkpoint's hash, and a head behind the newest checkpoint means events were removed.
    """
    head_seq, head_hash = _head(session)
    marks = list(checkpoints)
    for n, seq, digest in marks:
        if seq == 0 and digest != GENESIS:
            return Verification(False, 0, 1, f"checkpoint {n} of the empty chain does not match", checkpoint=n)
    marks = [m for m in marks if m[1] > 0]
    mark, next_mark, vouched = 0, marks[0][1] if marks else -1, 0
    total = head_seq
    cols = (AuditEvent.seq, _stored_ts_text(session), AuditEvent.actor, AuditEvent.action, AuditEvent.subject,
            AuditEvent.details_json, AuditEvent.prev_hash, AuditEvent.hash)
    prev, expected, checked = GENESIS, 1, 0
    # Core rows of plain strings straight off the connection: no ORM, no type processing, no JSON.
    rows = session.connection().execute(select(*cols).where(AuditEvent.seq <= head_seq).order_by(AuditEvent.seq)
                                        .execution_options(yield_per=batch))
    for seq, ts, actor, action, subject, details, prev_hash, digest in rows:
        if seq != expected:
            return Verification(False, checked, expected, f"event {expected} is missing (next stored is {seq})")
        if prev_hash != prev:
            return Verification(False, checked, seq, f"event {seq} does not link to event {seq - 1}")
        if chain_hash(prev, _payload(seq, ts, actor, action, subject, details)) != digest:
            return Verification(False, checked, seq, f"event {seq} was altered (its hash does not match its content)")
        while seq == next_mark:
            n, _, signed = marks[mark]
            if signed != digest:
                return Verification(False, checked, vouched + 1,
                                    f"checkpoint {n} (event {seq}) no longer matches the chain: events "
                                    f"{vouched + 1} to {seq} were rewritten after it was signed", checkpoint=n)
            vouched, mark = seq, mark + 1
            next_mark = marks[mark][1] if mark < len(marks) else -1
        prev, expected, checked = digest, expected + 1, checked + 1
        if progress is not None and checked % batch == 0:
            progress(checked, total)
    if checked != head_seq or prev != head_hash:
        return Verification(False, checked, checked + 1,
                            f"the chain ends at event {checked} but the head says {head_seq}: events were removed")
    if mark < len(marks):  # a checkpoint past the head: the chain and its head were cut back together
        n, seq, _ = marks[-1]
        return Verification(False, checked, head_seq + 1,
                            f"the chain's head is event {head_seq} but checkpoint {n} vouches for event {seq}: "
                            "events were removed (the chain was truncated)", checkpoint=n)
    # One statement, so one snapshot: an append commits its event and the head together.
    stray = session.execute(select(AuditEvent.seq, AuditHead.seq).join(AuditHead, AuditHead.id == 1)
                            .where(AuditEvent.seq > AuditHead.seq).order_by(AuditEvent.seq).limit(1)).first()
    if stray is not None:
        return Verification(False, checked, stray[0], f"event {stray[0]} is past the chain's head (event {stray[1]}): "
                                                      "it was added outside LeanOps")
    if progress is not None:
        progress(checked, total)
    signed = f"; {len(marks)} signed checkpoints match" if marks else ""
    return Verification(True, checked, None, f"all {checked} events link and match{signed}")


def _head(session: Session) -> tuple[int, str]:
    seq, digest = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return int(seq), str(digest)


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


_Select = TypeVar("_Select", bound=Select[*tuple[Any, ...]])  # a Select in, the same Select out


@dataclass(frozen=True)
class EventFilter:
    """What the Audit log page filters on; empty fields match everything."""

    actor: str = ""
    action: str = ""
    subject: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: _Select) -> _Select:
        if self.actor:
            query = query.where(AuditEvent.actor.contains(self.actor, autoescape=True))
        if self.action:
            query = query.where(AuditEvent.action.startswith(self.action, autoescape=True))
        if self.subject:
            query = query.where(AuditEvent.subject.contains(self.subject, autoescape=True))
        if self.since is not None:
            query = query.where(AuditEvent.ts >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.ts < self.until)
        return query


@dataclass(frozen=True)
class EventView:
    """An event as a reader may see it: ``details`` are hidden when they are not for this reader."""

    seq: int
    ts: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def details_visible(action: str, reader: Actor) -> bool:
    """Admin-configuration details are for admins; everything else is for every reader."""
    return reader.at_least("admin") or not action.startswith(ADMIN_ONLY_ACTIONS)


def _view(event: AuditEvent, reader: Actor) -> EventView:
    details = event.details if details_visible(event.action, reader) else dict(HIDDEN_DETAILS)
    return EventView(event.seq, event.ts, event.actor, event.action, event.subject, details, event.prev_hash,
                     event.hash)


def search(session: Session, *, reader: Actor, where: EventFilter, limit: int = 50,
           before_seq: int | None = None) -> list[EventView]:
    """Newest first, one page at a time (keyset on seq, so page 2,000 costs what page 1 does), as ``reader``
    may see them (``details_visible``)."""
    query = where.apply(select(AuditEvent)).order_by(desc(AuditEvent.seq)).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return [_view(e, reader) for e in session.scalars(query)]


def count_matching(session: Session, *, where: EventFilter) -> int:
    return session.scalar(where.apply(select(func.count()).select_from(AuditEvent))) or 0


def export_csv(session: Session, *, reader: Actor, where: EventFilter) -> str:
    """Every event matching ``where`` as CSV, oldest first, with the hashes (for offline checks).

    Details hidden from ``reader`` read ``HIDDEN_DETAILS``: an offline check of those rows needs an
    admin's export. Text a spreadsheet would run as a formula gets a leading ``'`` (``core.platform.exports``)."""
    import csv
    import io

    from core.platform.exports import csv_cell

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "ts", "actor", "action", "subject", "details", "prev_hash", "hash"])
    rows = session.execute(where.apply(select(AuditEvent)).order_by(AuditEvent.seq)
                           .execution_options(yield_per=5000)).scalars()
    for e in rows:
        details = e.details if details_visible(e.action, reader) else HIDDEN_DETAILS
        writer.writerow([csv_cell(v) for v in (e.seq, e.ts.isoformat(), e.actor, e.action, e.subject,
                                               json.dumps(details, sort_keys=True), e.prev_hash, e.hash)])
    return out.getvalue()


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def recent(session: Session, *, limit: int = 20) -> list[AuditEvent]:
    """The newest events with everything in them: for code and tests, not for showing to a reader."""
    return list(session.scalars(select(AuditEvent).order_by(desc(AuditEvent.seq)).limit(limit)))


def of_subject(session: Session, *, subject: str, actions: Sequence[str] = (), limit: int = 50) -> list[AuditEvent]:
    """The newest ``limit`` events of exactly ``subject`` (only ``actions``, when given), newest first, with
    everything in them: for code, not for showing to a reader."""
    query = select(AuditEvent).where(AuditEvent.subject == subject)
    if actions:
        query = query.where(AuditEvent.action.in_(actions))
    return list(session.scalars(query.order_by(desc(AuditEvent.seq)).limit(limit)))


def count_of_subject(session: Session, *, subject: str) -> int:
    """How many events have exactly ``subject``."""
    return session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.subject == subject)) or 0
