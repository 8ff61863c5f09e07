"""Signed checkpoints: a chain rewritten consistently (every later hash and the head recomputed) or cut
back together with its head is caught, and the checkpoint log itself cannot be edited unnoticed."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit, audit_checkpoints
from core.actors import Actor
from core.errors import PermissionDenied
from core.platform.database import transaction
from core.settings import Settings, get_settings
from db.models import AuditEvent, AuditHead, utcnow
from tests.support.factories import admin_actor


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    audit_checkpoints.ensure_key(settings)
    return settings


def append(factory: sessionmaker[Session], n: int) -> None:
    for i in range(n):
        with transaction(factory) as session:
            audit.record(session, "alice", "test.event", f"thing:{i}", {"i": i})


def check(factory: sessionmaker[Session], settings: Settings) -> audit_checkpoints.ChainCheck:
    with factory() as session:
        return audit_checkpoints.verify(session, settings)


def rewrite_consistently(factory: sessionmaker[Session], seq: int, details: dict[str, object]) -> None:
    """What someone with write access to the database does: edit one event, recompute every later hash
    and the head, so the unkeyed chain links and matches again."""
    with transaction(factory) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq)).all()
        prev = events[0].prev_hash
        for e in events:
            if e.seq == seq:
                e.details_json = audit.dumps_details(details)
            e.prev_hash = prev
            e.hash = prev = audit.chain_hash(prev, audit.canonical(e.seq, e.ts, e.actor, e.action, e.subject,
                                                                   e.details))
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))


def test_the_key_is_made_once_owner_only_and_its_public_half_stored(settings: Settings) -> None:
    public, created = audit_checkpoints.ensure_key(settings)
    key_file = Path(settings.home) / "audit.key"
    assert created and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert public.startswith("ed25519:") and (Path(settings.home) / "audit.pub").read_text().strip() == public
    assert audit_checkpoints.ensure_key(settings) == (public, False)
    assert key_file.read_text().strip() not in public


def test_a_configured_key_is_used_and_a_bad_one_is_named_not_shown(settings: Settings, tmp_path: Path) -> None:
    import base64
    import os

    raw = base64.b64encode(os.urandom(32)).decode()
    env_settings = get_settings(home=tmp_path / "other", db_url=settings.db_url, audit_key=raw)
    public, created = audit_checkpoints.ensure_key(env_settings)
    assert not created and not (tmp_path / "other" / "audit.key").exists() and public.startswith("ed25519:")
    bad = get_settings(home=tmp_path / "other", db_url=settings.db_url, audit_key="not-a-key-at-all")
    with pytest.raises(audit_checkpoints.AuditKeyError, match="LEANOPS_AUDIT_KEY is not an Ed25519 key") as err:
        audit_checkpoints.ensure_key(bad)
    assert "not-a-key-at-all" not in str(err.value)


def test_checkpoints_verify_and_are_audited(factory: sessionmaker[Session], keyed: Settings) -> None:
    append(factory, 5)
    first = audit_checkpoints.write(factory, keyed, actor=admin_actor())
    assert (first.n, first.seq) == (1, 5)
    append(factory, 3)
    second = audit_checkpoints.write(factory, keyed, actor=admin_actor())
    assert (second.n, second.seq) == (2, 9)  # 5 + the checkpointed event + 3
    result = check(factory, keyed)
    assert result.ok, result.result.reason
    assert "2 signed checkpoints match" in result.result.reason
    assert result.as_dict()["latest_checkpoint"] == {"n": 2, "seq": 9, "hash": second.hash, "time": second.time,
                                                     "signature": second.signature}
    with factory() as session:
        logged = [e for e in audit.recent(session) if e.action == "audit.checkpointed"]
    assert [e.details["seq"] for e in logged] == [9, 5]


def test_every_verification_is_recorded_as_whoever_asked(factory: sessionmaker[Session], keyed: Settings) -> None:
    """Page, CLI and job share ``verify_and_record``: a pass and a failure are both written into the chain."""
    append(factory, 4)
    audit_checkpoints.write(factory, keyed, actor=admin_actor())
    passed = audit_checkpoints.verify_and_record(factory, keyed, actor=Actor("vera", "viewer"))
    rewrite_consistently(factory, 2, {"i": 99})
    failed = audit_checkpoints.verify_and_record(factory, keyed, actor=Actor("system:schedule:audit-verify", "admin"))
    assert passed.ok and not failed.ok and failed.result.checkpoint == 1
    with factory() as session:
        recorded = [e for e in reversed(audit.recent(session)) if e.action == "audit.verified"]
    assert [(e.actor, e.details["ok"], e.details["checkpoint"]) for e in recorded] == [
        ("vera", True, None), ("system:schedule:audit-verify", False, 1)]
    assert recorded[0].details["checked"] == 5  # the walk saw the chain up to the verdict's own event


def test_a_consistent_rewrite_names_the_first_checkpoint_that_no_longer_matches(
        factory: sessionmaker[Session], keyed: Settings) -> None:
    append(factory, 4)
    audit_checkpoints.write(factory, keyed, actor=admin_actor())  # n=1 at event 4
    append(factory, 4)
    audit_checkpoints.write(factory, keyed, actor=admin_actor())  # n=2 at event 9
    append(factory, 2)
    rewrite_consistently(factory, 7, {"i": 99})
    with factory() as session:
        assert audit.verify(session).ok, "the unkeyed chain alone cannot tell"
    result = check(factory, keyed)
    assert not result.ok
    assert (result.result.checkpoint, result.result.first_bad) == (2, 5)
    assert "checkpoint 2 (event 9) no longer matches" in result.result.reason
    assert result.as_dict()["checkpoint"] == 2


def test_a_truncated_chain_with_its_head_fixed_is_caught(factory: sessionmaker[Session], keyed: Settings) -> None:
    append(factory, 20)
    cp = audit_checkpoints.write(factory, keyed, actor=admin_actor())
    with transaction(factory) as session:  # drop the last 10 events and move the head back to match
        session.execute(delete(AuditEvent).where(AuditEvent.seq > cp.seq - 10))
        last = session.scalar(select(AuditEvent).where(AuditEvent.seq == cp.seq - 10))
        assert last is not None
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=last.seq, hash=last.hash))
    with factory() as session:
        assert audit.verify(session).ok, "the unkeyed chain alone cannot tell"
    result = check(factory, keyed)
    assert not result.ok and result.result.checkpoint == 1 and result.result.first_bad == 11
    assert "truncated" in result.result.reason


@pytest.mark.parametrize("edit", ["signature", "hash", "drop_first"])
def test_an_edited_checkpoint_log_is_caught(factory: sessionmaker[Session], keyed: Settings, edit: str) -> None:
    append(factory, 3)
    for _ in range(3):
        audit_checkpoints.write(factory, keyed, actor=admin_actor())
    path = audit_checkpoints.log_path(keyed)
    lines = path.read_text().splitlines()
    doc = json.loads(lines[1])
    if edit == "signature":
        doc["time"] = "2020-01-01T00:00:00.000000Z"
        lines[1] = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    elif edit == "hash":  # someone re-pointing a checkpoint at their rewritten chain, without the key
        doc["hash"] = "0" * 64
        lines[1] = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    else:
        lines = lines[1:]
    path.write_text("\n".join(lines) + "\n")
    result = check(factory, keyed)
    assert not result.ok
    assert result.result.checkpoint == (1 if edit == "drop_first" else 2)


def test_checkpoints_signed_by_another_key_are_refused(factory: sessionmaker[Session], keyed: Settings,
                                                       tmp_path: Path) -> None:
    import base64
    import os

    append(factory, 2)
    other = get_settings(home=keyed.home, db_url=keyed.db_url, audit_key=base64.b64encode(os.urandom(32)).decode())
    audit_checkpoints.write(factory, other, actor=admin_actor())
    result = check(factory, keyed)
    assert not result.ok and "signed by another key" in result.result.reason


def test_only_admins_write_checkpoints_and_none_without_a_key(factory: sessionmaker[Session],
                                                             settings: Settings) -> None:
    with pytest.raises(audit_checkpoints.AuditKeyError, match="no audit key"):
        audit_checkpoints.write(factory, settings, actor=admin_actor())
    audit_checkpoints.ensure_key(settings)
    with pytest.raises(PermissionDenied):
        audit_checkpoints.write(factory, settings, actor=Actor("vic", "approver"))
    assert not audit_checkpoints.log_path(settings).exists()


def test_the_scheduled_checkpoint_is_written_every_n_events_or_hour(factory: sessionmaker[Session],
                                                                    settings: Settings) -> None:
    settings = get_settings(home=settings.home, db_url=settings.db_url, audit_checkpoint_events=10)
    audit_checkpoints.ensure_key(settings)
    system = Actor("system:test", "admin", kind="system")
    assert audit_checkpoints.write_if_due(factory, settings, actor=system) is None, "an empty chain needs none"
    append(factory, 3)
    first = audit_checkpoints.write_if_due(factory, settings, actor=system)
    assert first is not None and first.seq == 3
    append(factory, 2)
    assert audit_checkpoints.write_if_due(factory, settings, actor=system) is None
    later = utcnow() + timedelta(hours=1, seconds=1)
    assert audit_checkpoints.write_if_due(factory, settings, actor=system, now=later) is not None
    append(factory, 10)
    assert audit_checkpoints.write_if_due(factory, settings, actor=system) is not None
    assert check(factory, settings).ok


def test_checkpoints_written_during_a_walk_are_never_a_false_alarm(factory: sessionmaker[Session],
                                                                   keyed: Settings) -> None:
    append(factory, 30)
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_checkpointing() -> None:
        try:
            while not stop.is_set():
                with transaction(factory) as session:
                    audit.record(session, "bob", "test.event", "thing:bg", {})
                audit_checkpoints.write(factory, keyed, actor=admin_actor())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=keep_checkpointing)
    worker.start()
    try:
        for _ in range(15):
            result = check(factory, keyed)
            assert result.ok, result.result.reason
    finally:
        stop.set()
        worker.join()
    assert not errors
