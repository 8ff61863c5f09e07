"""Signed checkpoints of the audit chain, kept outside the database.

The chain alone is unkeyed: whoever can write the database can edit an event and recompute every later
hash and the head. A checkpoint is the head ``{n, seq, hash, time, prev}`` signed with an Ed25519 key that
is not in the database (``LEANOPS_AUDIT_KEY``, else the workspace file ``audit.key``, 0600), appended to a
log that is not in the database either (``$LEANOPS_HOME/audit-checkpoints.jsonl``, opened append-only and
fsynced). ``prev`` is the sha256 of the previous line, so the log is a chain too: a line removed from the
middle is named. ``verify`` re-derives every checkpointed head while it walks the chain, and fails naming
the first checkpoint that no longer matches (a consistent rewrite) or the newest one the database head is
behind (truncation). Events after the newest checkpoint are vouched for by nothing yet: checkpoints are
written every ``audit_checkpoint_events`` events or every hour (the ``audit.checkpoint`` job) and by
``cli.py audit checkpoint``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, select

from core import audit, audit_anchor
from core.accounts.auth import require
from core.errors import LeanOpsError
from db.models import AuditEvent, AuditHead, utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from sqlalchemy.orm import Session, sessionmaker

    from core.actors import Actor
    from core.settings import Settings

KEY_FILE = "audit.key"
PUBLIC_FILE = "audit.pub"
LOG_FILE = "audit-checkpoints.jsonl"
PUBLIC_PREFIX = "ed25519:"
HOURLY = timedelta(hours=1)
_NEW_KEY_HINT = ("make one with: python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\"")


class AuditKeyError(LeanOpsError):
    """The audit signing key is missing or malformed, or the checkpoint log cannot be read or written."""


# -- the key -------------------------------------------------------------------------------------

def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def log_path(settings: Settings) -> Path:
    return settings.home / LOG_FILE


def _private_from(text: str, *, source: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise AuditKeyError(f"the audit key in {source} is not an Ed25519 key (base64 of 32 bytes); {_NEW_KEY_HINT}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_private_key(settings: Settings) -> Ed25519PrivateKey | None:
    """``LEANOPS_AUDIT_KEY`` if set, else the workspace's ``audit.key``; None when neither exists."""
    if settings.audit_key is not None:
        return _private_from(settings.audit_key.get_secret_value(), source="LEANOPS_AUDIT_KEY")
    path = key_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key file {path}: {exc.strerror}") from None
    return _private_from(text, source=str(path))


def public_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return PUBLIC_PREFIX + base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _public_from(text: str, *, source: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(text.strip().removeprefix(PUBLIC_PREFIX), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise AuditKeyError(f"{source} does not hold an Ed25519 public key ({PUBLIC_PREFIX}<base64>)") from None


def fingerprint(public: str) -> str:
    return hashlib.sha256(public.encode()).hexdigest()[:16]


def ensure_key(settings: Settings) -> tuple[str, bool]:
    """The public key of the audit key (``init``): the workspace file is written (0600) when
    ``LEANOPS_AUDIT_KEY`` is unset and the file is absent. Returns (public key, created now)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    key = load_private_key(settings)
    created = key is None
    if key is None:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        _write_private(key_path(settings), base64.b64encode(raw).decode())
    public = public_text(key.public_key())
    pub_path = home / PUBLIC_FILE
    if not pub_path.exists() or pub_path.read_text().strip() != public:
        pub_path.write_text(public + "\n")
    return public, created


def _write_private(path: Path, text: str) -> None:
    """Owner-only from the first byte (O_EXCL: an existing key is never overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, 0o600)  # the umask may have narrowed it, never widened: make it exact


def _verifying_key(settings: Settings) -> Ed25519PublicKey | None:
    """The private key's public half; without a private key (a verifier elsewhere), ``audit.pub``."""
    private = load_private_key(settings)
    if private is not None:
        return private.public_key()
    path = Path(settings.home) / PUBLIC_FILE
    return _public_from(path.read_text(), source=str(path)) if path.exists() else None


# -- the log -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    n: int
    seq: int
    hash: str
    time: str
    prev: str  # sha256 of the previous line of the log (GENESIS for the first)
    key: str  # fingerprint of the public key that signed it
    signature: str  # base64 Ed25519 signature of the other fields' canonical JSON

    def signed_bytes(self) -> bytes:
        body = {"n": self.n, "seq": self.seq, "hash": self.hash, "time": self.time, "prev": self.prev, "key": self.key}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "seq": self.seq, "hash": self.hash, "time": self.time, "prev": self.prev,
                "key": self.key, "signature": self.signature}


def _parse(line: str, number: int, path: Path) -> Checkpoint:
    try:
        doc = json.loads(line)
        return Checkpoint(int(doc["n"]), int(doc["seq"]), str(doc["hash"]), str(doc["time"]), str(doc["prev"]),
                          str(doc["key"]), str(doc["signature"]))
    except (ValueError, KeyError, TypeError):
        raise AuditKeyError(f"line {number} of {path} is not a checkpoint") from None


def read_log(settings: Settings) -> list[tuple[Checkpoint, str]]:
    """Every checkpoint with its line as written (empty when the log does not exist yet)."""
    path = log_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    return [(_parse(line, i, path), line) for i, line in enumerate(lines, 1)]


def _check_log(entries: list[tuple[Checkpoint, str]], public: Ed25519PublicKey | None, path: Path) -> str | None:
    """Why the log itself cannot be trusted (a bad signature, a removed or reordered line), or None."""
    from cryptography.exceptions import InvalidSignature

    if entries and public is None:
        return f"{path} holds checkpoints but there is no audit key to check them (LEANOPS_AUDIT_KEY, {KEY_FILE} " \
               f"or {PUBLIC_FILE})"
    prev, last_seq = audit.GENESIS, 0
    for i, (cp, line) in enumerate(entries, 1):
        if cp.n != i or cp.prev != prev:
            return f"checkpoint {i} of {path} does not follow checkpoint {i - 1}: the log was edited"
        assert public is not None
        if cp.key != fingerprint(public_text(public)):
            return f"checkpoint {cp.n} was signed by another key ({cp.key})"
        try:
            public.verify(base64.b64decode(cp.signature), cp.signed_bytes())
        except (InvalidSignature, binascii.Error, ValueError):
            return f"checkpoint {cp.n} has a bad signature: the log was edited"
        if cp.seq < last_seq:
            return f"checkpoint {cp.n} covers event {cp.seq}, before checkpoint {cp.n - 1}'s event {last_seq}"
        prev, last_seq = hashlib.sha256(line.encode()).hexdigest(), cp.seq
    return None


def _last_line(fd: int) -> str | None:
    size = os.fstat(fd).st_size
    if not size:
        return None
    start = max(0, size - 8192)  # one line is ~330 bytes
    chunk = os.pread(fd, size - start, start).decode()
    lines = chunk.rstrip("\n").split("\n")
    return lines[-1] if lines and lines[-1] else None


def _append(settings: Settings, key: Ed25519PrivateKey, *, seq: int, digest: str,
            due: Callable[[Checkpoint | None], bool] | None = None) -> Checkpoint | None:
    """Sign (seq, digest) as the next checkpoint and append it (locked, O_APPEND, fsynced).
    With ``due``, only when ``due(last checkpoint)`` says so (decided under the lock)."""
    import fcntl

    path = log_path(settings)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time: n and prev come from the line before
        last_text = _last_line(fd)
        last = _parse(last_text, 0, path) if last_text else None
        if due is not None and not due(last):
            return None
        public = public_text(key.public_key())
        cp = Checkpoint(n=(last.n + 1) if last else 1, seq=seq, hash=digest, time=audit.ts_text(utcnow()),
                        prev=hashlib.sha256(last_text.encode()).hexdigest() if last_text else audit.GENESIS,
                        key=fingerprint(public), signature="")
        signature = base64.b64encode(key.sign(cp.signed_bytes())).decode()
        cp = Checkpoint(cp.n, cp.seq, cp.hash, cp.time, cp.prev, cp.key, signature)
        os.write(fd, (cp.line() + "\n").encode())
        os.fsync(fd)
        return cp
    except OSError as exc:
        raise AuditKeyError(f"cannot append to the checkpoint log {path}: {exc.strerror}") from None
    finally:
        os.close(fd)  # closing releases the lock


def _key_or_fail(settings: Settings) -> Ed25519PrivateKey:
    key = load_private_key(settings)
    if key is None:
        raise AuditKeyError(f"no audit key: LEANOPS_AUDIT_KEY is not set and {key_path(settings)} does not "
                            "exist. Run `python cli.py init` to create it, or set LEANOPS_AUDIT_KEY")
    return key


def _head(session: Session) -> tuple[int, str]:
    seq, digest = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return int(seq), str(digest)


def write(factory: sessionmaker[Session], settings: Settings, *, actor: Actor) -> Checkpoint:
    """Sign the chain's committed head now (admin) and record that in the chain (``audit.checkpointed``).

    The head is read committed, so a checkpoint never vouches for an event a rollback could undo; the
    event recording it comes after, so a failure there still leaves a valid checkpoint."""
    from core.platform.database import transaction

    key = _key_or_fail(settings)
    with transaction(factory) as session:
        require(session, actor, "audit.checkpoint", "audit")
        seq, digest = _head(session)
    cp = _append(settings, key, seq=seq, digest=digest)
    assert cp is not None
    anchored = _anchor(settings, cp)
    with transaction(factory) as session:
        audit.record(session, actor, "audit.checkpointed", "audit", _public(cp) | anchored)
    return cp


def _anchor(settings: Settings, cp: Checkpoint) -> dict[str, Any]:
    """Put the checkpoint into the Object Lock anchor when one is configured (``core.audit_anchor``). The log
    line is already written: a failure here leaves a valid checkpoint that the next one's anchor covers."""
    if not audit_anchor.configured(settings):
        return {}
    return {"anchor": audit_anchor.publish(settings, n=cp.n, seq=cp.seq, digest=cp.hash, key=cp.key, time=cp.time)}


def write_if_due(factory: sessionmaker[Session], settings: Settings, *, actor: Actor,
                 now: datetime | None = None) -> Checkpoint | None:
    """The scheduled checkpoint: when ``audit_checkpoint_events`` events came since the last one, or an
    hour passed and the chain moved, or there is none yet. None when nothing was due."""
    from core.platform.database import transaction

    key = _key_or_fail(settings)
    now = now or utcnow()
    with transaction(factory) as session:
        seq, digest = _head(session)

    def due(last: Checkpoint | None) -> bool:
        if last is None:
            return seq > 0
        if seq - last.seq >= settings.audit_checkpoint_events:
            return True
        moved = (seq, digest) != (last.seq, last.hash)
        return moved and now - datetime.fromisoformat(last.time.replace("Z", "+00:00")) >= HOURLY

    cp = _append(settings, key, seq=seq, digest=digest, due=due)
    if cp is not None:
        anchored = _anchor(settings, cp)
        with transaction(factory) as session:
            audit.record(session, actor, "audit.checkpointed", "audit", _public(cp) | anchored)
    return cp


def _public(cp: Checkpoint) -> dict[str, Any]:
    """What reports, job results and the CLI print of a checkpoint, so outside parties hold copies."""
    return {"n": cp.n, "seq": cp.seq, "hash": cp.hash, "time": cp.time, "signature": cp.signature}


def latest(settings: Settings) -> dict[str, Any] | None:
    """The newest checkpoint (n, seq, hash, time, signature), or None when there is none."""
    entries = read_log(settings)
    return _public(entries[-1][0]) if entries else None


# -- verification --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainCheck:
    """``audit.verify`` over the chain and the checkpoint log together."""

    result: audit.Verification
    checkpoints: int
    latest: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.result.ok

    def as_dict(self) -> dict[str, Any]:
        return self.result.as_dict() | {"checkpoint": self.result.checkpoint, "checkpoints": self.checkpoints,
                                        "latest_checkpoint": self.latest}


def verify(session: Session, settings: Settings, *,
           progress: Callable[[int, int], None] | None = None) -> ChainCheck:
    """Check the checkpoint log (signatures, order), then walk the chain against it.

    What the chain and the anchor say was written is read first, then the log (each checkpoint is appended to
    the log before it is anchored and recorded): a checkpoint written meanwhile is never a false "truncated".
    The log is read before the walk reads the head: every checkpoint read then covers an event that was
    committed before the head is read, so a checkpoint written during the walk is never a false alarm."""
    path = log_path(settings)
    written = _written(session, settings)
    entries = read_log(settings)
    newest = _public(entries[-1][0]) if entries else None
    problem = written if isinstance(written, str) else (
        _check_log(entries, _verifying_key(settings) if entries else None, path)
        or _check_records(session, entries, written, path))
    if problem is not None:
        bad = audit.Verification(False, 0, None, problem, checkpoint=_first_number(problem))
        return ChainCheck(bad, len(entries), newest)
    marks = [(cp.n, cp.seq, cp.hash) for cp, _ in entries]
    return ChainCheck(audit.verify(session, progress=progress, checkpoints=marks), len(entries), newest)


def _recorded(session: Session, action: str) -> dict[str, Any] | None:
    """The details of the newest ``action`` event of the chain (what the database says was done)."""
    text = session.scalar(select(AuditEvent.details_json).where(AuditEvent.action == action)
                          .order_by(desc(AuditEvent.seq)).limit(1))
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _written(session: Session, settings: Settings) -> list[tuple[int, str, str | None, str]] | str:
    """The newest checkpoint the chain and the anchor say was written, as (n, hash, key fingerprint, where it is
    recorded); a string when the anchor cannot be read."""
    sources: list[tuple[int, str, str | None, str]] = []
    done = _recorded(session, "audit.checkpointed")
    if done is not None and str(done.get("n", "")).isdigit():
        sources.append((int(done["n"]), str(done.get("hash", "")), None, "the audit chain (audit.checkpointed)"))
    if audit_anchor.configured(settings):
        try:
            anchored = audit_anchor.newest(settings)
        except audit_anchor.AnchorError as exc:
            return f"checkpoint anchor: {exc}"
        if anchored is not None:
            sources.append((anchored.n, anchored.hash, anchored.key, f"the Object Lock anchor {anchored.where}"))
    return sources


def _check_records(session: Session, entries: list[tuple[Checkpoint, str]],
                   sources: list[tuple[int, str, str | None, str]], path: Path) -> str | None:
    """The log against what the chain and the anchor say was written: once a checkpoint was written, a
    missing or shortened log, or one signed by a key other than the recorded one, fails verification."""
    held = len(entries)
    for n, digest, key, where in sources:
        if held < n:
            state = "is missing" if not path.exists() else f"holds {held} checkpoint(s)"
            return f"checkpoint {n} was written (recorded in {where}) but the checkpoint log {path} {state}: " \
                   "the log was deleted or truncated"
        cp = entries[n - 1][0]
        if digest and cp.hash != digest:
            return f"checkpoint {n} of {path} is not the one recorded in {where}: the log was replaced"
        if key and cp.key != key:
            return f"checkpoint {n} of {path} was signed by key {cp.key}, not the recorded key {key} ({where})"
    created = _recorded(session, "audit.key_created")
    if entries and created is not None and isinstance(created.get("public_key"), str):
        recorded = fingerprint(created["public_key"])
        if entries[-1][0].key != recorded:
            return f"checkpoint {entries[-1][0].n} of {path} was signed by key {entries[-1][0].key}, not the key " \
                   f"recorded when the workspace was made ({recorded}, audit.key_created)"
    return None


def _first_number(problem: str) -> int | None:
    words = problem.split()
    return int(words[1]) if len(words) > 1 and words[0] == "checkpoint" and words[1].isdigit() else None


def verify_and_record(factory: sessionmaker[Session], settings: Settings, *, actor: Actor,
                      progress: Callable[[int, int], None] | None = None) -> ChainCheck:
    """Verify the chain against its signed checkpoints and record the verdict as ``actor`` (``audit.verified``).

    This is the one "verify the audit log" of every entry (the Audit log page, ``cli.py audit verify``, the
    nightly ``audit.verify`` job), and every verification is recorded, passed or failed, by whoever asked: the
    chain itself says when it was last found intact. The walk and the record are separate units: a walk over
    a long chain holds its read snapshot for a while, and on SQLite a write from a snapshot that another
    append has overtaken is refused as "database is locked".
    """
    from core.platform.database import transaction

    with transaction(factory) as session:
        check = verify(session, settings, progress=progress)
    with transaction(factory) as session:
        audit.record(session, actor, "audit.verified", "audit", check.as_dict())
    return check
