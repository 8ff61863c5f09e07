"""Tamper-evident audit log: every event's hash covers the previous hash and its own canonical JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import desc, func, select, update
from sqlalchemy.orm import Session

from core.auth_types import Actor
from db.models import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64


def canonical(seq: int, ts: datetime, actor: str, action: str, subject: str, details: dict[str, Any]) -> bytes:
    """The exact bytes an event's hash covers (sorted keys, no spaces, UTC ISO time)."""
    doc = {
        "seq": seq,
        "ts": ts.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


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
    clean = json.loads(json.dumps(details or {}, default=str))
    seq, prev = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1).returning(AuditHead.seq, AuditHead.hash)
    ).one()
    ts = utcnow()
    digest = chain_hash(prev, canonical(seq, ts, name, action, subject, clean))
    event = AuditEvent(seq=seq, ts=ts, actor=name, action=action, subject=subject, details=clean,
                       prev_hash=prev, hash=digest)
    session.add(event)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=digest))
    session.flush()
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "first_bad": self.first_bad, "reason": self.reason}


def verify(session: Session, *, progress: Callable[[int, int], None] | None = None,
           batch: int = 20_000) -> Verification:
    """Walk the whole chain in order; name the first event that was edited, removed or moved."""
    head_seq, head_hash = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    total = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    cols = (AuditEvent.seq, AuditEvent.ts, AuditEvent.actor, AuditEvent.action, AuditEvent.subject,
            AuditEvent.details, AuditEvent.prev_hash, AuditEvent.hash)
    prev, expected, checked = GENESIS, 1, 0
    rows = session.execute(select(*cols).order_by(AuditEvent.seq).execution_options(yield_per=batch))
    for seq, ts, actor, action, subject, details, prev_hash, digest in rows:
        if seq != expected:
            return Verification(False, checked, expected, f"event {expected} is missing (next stored is {seq})")
        if prev_hash != prev:
            return Verification(False, checked, seq, f"event {seq} does not link to event {seq - 1}")
        if chain_hash(prev, canonical(seq, ts, actor, action, subject, details)) != digest:
            return Verification(False, checked, seq, f"event {seq} was altered (its hash does not match its content)")
        prev, expected, checked = digest, expected + 1, checked + 1
        if progress is not None and checked % batch == 0:
            progress(checked, total)
    if checked != head_seq or prev != head_hash:
        return Verification(False, checked, checked + 1,
                            f"the chain ends at event {checked} but the head says {head_seq}: events were removed")
    if progress is not None:
        progress(checked, total)
    return Verification(True, checked, None, f"all {checked} events link and match")


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


@dataclass(frozen=True)
class EventFilter:
    """What the Audit log page filters on; empty fields match everything."""

    actor: str = ""
    action: str = ""
    subject: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query):  # noqa: ANN001, ANN201 - a Select in, the same Select out
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


def search(session: Session, *, where: EventFilter, limit: int = 50, before_seq: int | None = None
           ) -> list[AuditEvent]:
    """Newest first, one page at a time (keyset on seq, so page 2,000 costs what page 1 does)."""
    query = where.apply(select(AuditEvent)).order_by(desc(AuditEvent.seq)).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(session.scalars(query))


def count_matching(session: Session, *, where: EventFilter) -> int:
    return session.scalar(where.apply(select(func.count()).select_from(AuditEvent))) or 0


def export_csv(session: Session, *, where: EventFilter) -> str:
    """Every event matching ``where`` as CSV, oldest first, with the hashes (for offline checks)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "ts", "actor", "action", "subject", "details", "prev_hash", "hash"])
    rows = session.execute(where.apply(select(AuditEvent)).order_by(AuditEvent.seq)
                           .execution_options(yield_per=5000)).scalars()
    for e in rows:
        writer.writerow([e.seq, e.ts.isoformat(), e.actor, e.action, e.subject,
                         json.dumps(e.details, sort_keys=True), e.prev_hash, e.hash])
    return out.getvalue()


def actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def recent(session: Session, *, limit: int = 20) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(desc(AuditEvent.seq)).limit(limit)))
