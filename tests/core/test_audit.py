"""The audit log is a hash chain: appends link up, and any edit or removal is named by verify."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.platform.database import transaction
from db.models import AuditEvent, AuditHead
from tests.support.factories import admin_actor


def append(factory: sessionmaker[Session], n: int, actor: str = "alice") -> None:
    for i in range(n):
        with transaction(factory) as session:
            audit.record(session, actor, "test.event", f"thing:{i}", {"i": i, "note": "ünïcode ok"})


def verify(factory: sessionmaker[Session]) -> audit.Verification:
    with factory() as session:
        return audit.verify(session)


def test_empty_chain_verifies(factory: sessionmaker[Session]) -> None:
    result = verify(factory)
    assert (result.ok, result.checked, result.first_bad) == (True, 0, None)


def test_appends_link_and_verify(factory: sessionmaker[Session]) -> None:
    append(factory, 5)
    with transaction(factory) as session:
        audit.record(session, admin_actor(), "test.actor_object", "thing:x")

    result = verify(factory)
    assert (result.ok, result.checked, result.first_bad) == (True, 6, None)
    with factory() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        head = session.get(AuditHead, 1)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:], strict=False))
    assert (head.seq, head.hash) == (6, events[-1].hash)
    assert events[-1].actor == "admin-test"
    assert events[0].details == {"i": 0, "note": "ünïcode ok"}


def test_rolled_back_append_leaves_no_gap(factory: sessionmaker[Session]) -> None:
    append(factory, 2)
    with pytest.raises(RuntimeError), transaction(factory) as session:
        audit.record(session, "alice", "test.event", "thing:lost")
        raise RuntimeError("the caller's work failed")
    append(factory, 1)
    assert verify(factory).ok
    assert verify(factory).checked == 3


def test_edited_details_are_caught(engine: Engine, factory: sessionmaker[Session]) -> None:
    append(factory, 5)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent.__table__).where(AuditEvent.seq == 3).values(details='{"i":99}'))
    result = verify(factory)
    assert (result.ok, result.first_bad, result.checked) == (False, 3, 2)
    assert "altered" in result.reason


def test_edited_actor_is_caught(engine: Engine, factory: sessionmaker[Session]) -> None:
    append(factory, 5)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = :actor WHERE seq = :seq"), {"actor": "mallory", "seq": 4})
    result = verify(factory)
    assert (result.ok, result.first_bad) == (False, 4)


def test_recomputed_hash_breaks_the_next_link(engine: Engine, factory: sessionmaker[Session]) -> None:
    """A forger who also fixes the edited row's own hash is caught at the next event."""
    append(factory, 5)
    with factory() as session:
        event = session.get(AuditEvent, 2)
        forged = audit.chain_hash(event.prev_hash, audit.canonical(2, event.ts, "mallory", event.action,
                                                                  event.subject, event.details))
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 2"), {"h": forged})
    result = verify(factory)
    assert (result.ok, result.first_bad) == (False, 3)


def test_deleted_middle_event_is_caught(engine: Engine, factory: sessionmaker[Session]) -> None:
    append(factory, 5)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent.__table__).where(AuditEvent.seq == 3))
    result = verify(factory)
    assert (result.ok, result.first_bad) == (False, 3)
    assert "missing" in result.reason


def test_deleted_last_event_is_caught(engine: Engine, factory: sessionmaker[Session]) -> None:
    append(factory, 5)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent.__table__).where(AuditEvent.seq == 5))
    result = verify(factory)
    assert (result.ok, result.first_bad) == (False, 5)
    assert "removed" in result.reason


def test_concurrent_appends_make_one_chain(factory: sessionmaker[Session]) -> None:
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            start.wait()
            append(factory, per_thread, actor=f"worker-{w}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in pool), "appenders are stuck"
    assert errors == []

    total = threads * per_thread
    result = verify(factory)
    assert (result.ok, result.checked) == (True, total), result.reason
    with factory() as session:
        events = session.execute(select(AuditEvent.seq, AuditEvent.prev_hash, AuditEvent.actor)).all()
    assert sorted(seq for seq, _, _ in events) == list(range(1, total + 1))
    assert len({prev for _, prev, _ in events}) == total, "two events share a predecessor: the chain forked"
    assert {actor for _, _, actor in events} == {f"worker-{w}" for w in range(threads)}


def test_verify_during_appends_is_never_a_false_alarm(factory: sessionmaker[Session]) -> None:
    """A walk that overlaps appends covers the chain up to the head it read (CI saw "events were removed")."""
    append(factory, 20)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (append(factory, 150, actor="writer"), done.set()))
    writer.start()
    verdicts = []
    while not done.is_set():
        verdicts.append(verify(factory))
    writer.join()
    assert verdicts and all(v.ok for v in verdicts), [v.reason for v in verdicts if not v.ok][:3]
    assert verify(factory).checked == 170


def test_an_event_added_behind_the_head_is_caught(engine: Engine, factory: sessionmaker[Session]) -> None:
    append(factory, 3)
    with engine.begin() as conn:  # a fourth row written straight into the table, the head left alone
        row = conn.execute(select(AuditEvent.__table__).where(AuditEvent.seq == 3)).mappings().one()
        conn.execute(AuditEvent.__table__.insert().values({**row, "seq": 4}))
    result = verify(factory)
    assert (result.ok, result.first_bad) == (False, 4) and "outside LeanOps" in result.reason


def test_admin_configuration_details_are_for_admins_only(factory: sessionmaker[Session]) -> None:
    from core.actors import Actor

    slack = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    with transaction(factory) as session:  # an older row that holds a Slack URL in its details
        audit.record(session, "admin", "alert_channel.added", "alert_channel:slack", {"config": {"url": slack}})
        audit.record(session, "admin", "source.added", "source:wh", {"url": "postgresql://r:***@h/db"})
        audit.record(session, "ann", "model.promoted", "model:churn", {"version": 2})
    where = audit.EventFilter()
    viewer, admin = Actor("vic", "viewer"), Actor("root", "admin")
    with factory() as session:
        seen = {e.action: e.details for e in audit.search(session, reader=viewer, where=where)}
        assert seen["alert_channel.added"] == seen["source.added"] == audit.HIDDEN_DETAILS
        assert seen["model.promoted"] == {"version": 2}
        assert "XXXXSECRET" not in audit.export_csv(session, reader=viewer, where=where)
        assert audit.search(session, reader=admin, where=where)[-1].details == {"config": {"url": slack}}
        assert "XXXXSECRET" in audit.export_csv(session, reader=admin, where=where)
        assert audit.verify(session).ok  # hiding happens on the way out: the chain is untouched
