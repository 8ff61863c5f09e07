"""Signed test reports: every evaluation of a version's gates as a dated document signed with the audit key.

EU AI Act Annex IV 2(g) asks for "test logs and all test reports dated and signed by the responsible persons".
Each gate evaluation (at registration, at approval, before promotion) becomes one report: the gates with
their observed and required values and verdicts, the dataset's and the model artifact's sha256, who asked
for the evaluation, and the sha256 of the policy file in force. It is signed with the workspace's Ed25519
audit key (``core/audit_checkpoints.py``: ``LEANOPS_AUDIT_KEY`` or the workspace's ``audit.key``) and
stored whole (``test_reports``). An approval adds the approver's signature over the same report.

LeanOps holds one key, not one per person: a signature says "this workspace's LeanOps signed this report
for <signer>, who was signed in with that role at that time"; the audit log records the same act.

The file is canonical JSON (sorted keys, two-space indent, UTF-8, one final newline) of
``{"report": …, "signatures": [{signer, role, signed_at, key, report_sha256, signature}]}``. A signature
covers the canonical compact JSON of its own fields without ``signature``, and its ``report_sha256`` is the
sha256 of the report's canonical compact JSON. ``verify_text`` re-renders the parsed file and refuses any
byte that differs, so a changed byte fails even where JSON would not notice (whitespace), and checks every
signature against the public key it is given (``audit.pub``): a report signed by another key fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from core import audit_checkpoints
from core.actors import Actor
from core.training import runs
from db.models import SignedTestReport, utcnow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.policy import GateResult
    from core.settings import Settings

FORMAT = "leanops.test-report/1"
CONTEXTS = ("registration", "approval", "promotion")
_MODEL_HASHES: dict[str, str | None] = {}  # a logged model's files never change: hash each once per process
_MODEL_HASHES_LOCK = threading.Lock()


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def render(doc: dict[str, Any]) -> str:
    """The one byte form of a signed report file."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def report_sha256(report: dict[str, Any]) -> str:
    return hashlib.sha256(_compact(report)).hexdigest()


# -- the key -------------------------------------------------------------------------------------

def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The workspace's audit key (made as ``init`` makes it when the workspace has none yet)."""
    key = audit_checkpoints.load_private_key(settings)
    if key is None:
        try:
            audit_checkpoints.ensure_key(settings)
        except FileExistsError:  # another process made it meanwhile
            pass
        key = audit_checkpoints.load_private_key(settings)
    assert key is not None
    return key


def public_key_text(settings: Settings) -> str:
    """The workspace's public audit key (``ed25519:<base64>``) that verifies its reports."""
    return audit_checkpoints.public_text(signing_key(settings).public_key())


def _signature(key: Ed25519PrivateKey, *, report: dict[str, Any], signer: str, role: str,
               now: datetime) -> dict[str, Any]:
    public = audit_checkpoints.public_text(key.public_key())
    fields = {"signer": signer, "role": role, "signed_at": now.isoformat(), "key": public,
              "report_sha256": report_sha256(report)}
    return {**fields, "signature": base64.b64encode(key.sign(_compact(fields))).decode()}


# -- making and storing --------------------------------------------------------------------------

def _model_hash(settings: Settings, model_uri: str | None) -> tuple[str | None, str]:
    if not model_uri:
        return None, "no model artifact is recorded for this version"
    with _MODEL_HASHES_LOCK:
        if model_uri in _MODEL_HASHES:
            return _MODEL_HASHES[model_uri], ""
    try:
        sha, files = settings.registry.hash_logged_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - an unreadable store is stated in the report, never raised
        return None, f"the model files could not be read for hashing: {str(exc).splitlines()[0][:200]}"
    found = sha if files else None
    with _MODEL_HASHES_LOCK:
        if len(_MODEL_HASHES) > 1000:
            _MODEL_HASHES.clear()
        _MODEL_HASHES[model_uri] = found
    return found, "" if found else "the model artifact has no files"


def content(session: Session, settings: Settings, *, model: str, version: int, context: str, result: GateResult,
            evaluator: str, now: datetime) -> dict[str, Any]:
    """The report of one gate evaluation (reads only)."""
    run = runs.row_for_version(session, model=model, version=version)
    model_sha, why = _model_hash(settings, run.model_uri if run else None)
    policy_text = settings.policies.text()
    rules = settings.policies.rules_for(model)
    doc = {
        "format": FORMAT, "model": model, "version": version, "context": context, "evaluated_at": now.isoformat(),
        "evaluator": evaluator, "passed": result.passed,
        "gates": [{"name": c.name, "observed": c.observed, "required": c.required, "passed": c.passed,
                   "detail": c.detail} for c in result.checks],
        "dataset": {"name": run.dataset_name if run else None, "version": run.dataset_version if run else None,
                    "sha256": run.dataset_sha256 if run else None},
        "model_artifact": {"uri": run.model_uri if run else None, "sha256": model_sha, "note": why},
        "policy": {"file": "policies.yaml", "sha256": hashlib.sha256(policy_text.encode()).hexdigest(),
                   "risk_tier": rules.risk_tier},
    }
    return json.loads(json.dumps(doc, default=str))  # plain JSON values, as a reader will parse them


@dataclass(frozen=True)
class StoredReport:
    id: int
    model: str
    version: int
    context: str
    passed: bool
    report_sha256: str
    created_at: datetime
    document: str

    @property
    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.document)
        return parsed

    @property
    def file_name(self) -> str:
        return f"test-report-{self.model}-v{self.version}-{self.id}.json"


def _stored(row: SignedTestReport) -> StoredReport:
    return StoredReport(row.id, row.model, row.version, row.context, row.passed, row.report_sha256, row.created_at,
                        row.document)


def issue(session: Session, settings: Settings, *, model: str, version: int, context: str, result: GateResult,
          actor: Actor | None, approver: Actor | None = None, now: datetime | None = None) -> StoredReport:
    """Make, sign and store the test report of one evaluation (inside the caller's unit); ``approver``
    adds their signature over the same report. Not an audit event of its own: the evaluation, approval or
    promotion it documents is one, and the stored report is the signed record."""
    now = now or utcnow()
    evaluator = actor.name if actor is not None else "system:gates"
    report = content(session, settings, model=model, version=version, context=context, result=result,
                     evaluator=evaluator, now=now)
    key = signing_key(settings)
    signatures = [_signature(key, report=report, signer=evaluator, role="evaluator", now=now)]
    if approver is not None:
        signatures.append(_signature(key, report=report, signer=approver.name, role="approver", now=now))
    sha = report_sha256(report)
    row = SignedTestReport(model=model, version=version, context=context, passed=result.passed, report_sha256=sha,
                           document=render({"report": report, "signatures": signatures}), created_at=now)
    session.add(row)
    session.flush()
    return _stored(row)


def of_version(session: Session, *, model: str, version: int) -> list[StoredReport]:
    """Every signed test report of ``model`` v``version``, oldest first."""
    return [_stored(r) for r in session.scalars(select(SignedTestReport).where(
        SignedTestReport.model == model, SignedTestReport.version == version).order_by(SignedTestReport.id))]


def latest(session: Session, *, model: str, version: int) -> StoredReport | None:
    row = session.scalar(select(SignedTestReport).where(
        SignedTestReport.model == model, SignedTestReport.version == version).order_by(desc(SignedTestReport.id))
        .limit(1))
    return _stored(row) if row is not None else None


# -- verifying -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str
    signed_by: list[str] = field(default_factory=list)
    signed_at: str | None = None
    signatures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "signed_by": self.signed_by, "signed_at": self.signed_at, "reason": self.reason,
                "signatures": self.signatures}


def verify_bytes(data: bytes, *, public_key: str) -> Verification:
    """Check a signed test report file offline against ``public_key`` (``ed25519:<base64>``)."""
    from cryptography.exceptions import InvalidSignature

    expected = audit_checkpoints._public_from(public_key, source="the public key")
    want = audit_checkpoints.public_text(expected)
    try:
        text = data.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Verification(False, f"not a signed test report: the file is not valid UTF-8 JSON ({exc})")
    if not isinstance(doc, dict) or not isinstance(doc.get("report"), dict) or not isinstance(
            doc.get("signatures"), list):
        return Verification(False, "not a signed test report: it needs a report and a list of signatures")
    if render(doc).encode("utf-8") != data:
        return Verification(False, "the file differs from its canonical form: a byte was changed")
    if doc["report"].get("format") != FORMAT:
        return Verification(False, f"unknown report format {doc['report'].get('format')!r} (expected {FORMAT})")
    if not doc["signatures"]:
        return Verification(False, "the report carries no signature")
    sha = report_sha256(doc["report"])
    seen: list[dict[str, Any]] = []
    for i, sig in enumerate(doc["signatures"]):
        if not isinstance(sig, dict):
            return Verification(False, f"signature {i + 1} is not an object")
        fields = {k: sig.get(k) for k in ("signer", "role", "signed_at", "key", "report_sha256")}
        if fields["key"] != want:
            return Verification(False, f"signature {i + 1} ({fields['signer']}) was made with another key "
                                       f"(fingerprint {audit_checkpoints.fingerprint(str(fields['key']))}, expected "
                                       f"{audit_checkpoints.fingerprint(want)})")
        if fields["report_sha256"] != sha:
            return Verification(False, f"signature {i + 1} ({fields['signer']}) covers another report "
                                       "(the report was changed after signing)")
        try:
            expected.verify(base64.b64decode(str(sig.get("signature", "")), validate=True), _compact(fields))
        except (InvalidSignature, binascii.Error, ValueError):
            return Verification(False, f"signature {i + 1} ({fields['signer']}) does not verify with the public key")
        seen.append({k: fields[k] for k in ("signer", "role", "signed_at")})
    return Verification(True, f"{len(seen)} signature(s) verified with key {audit_checkpoints.fingerprint(want)}",
                        [s["signer"] for s in seen], max(str(s["signed_at"]) for s in seen), seen)


def workspace_public_key(settings: Settings) -> str:
    """The public key this workspace's reports verify with: from its private audit key, else its ``audit.pub``."""
    from core.errors import InvalidInput

    key = audit_checkpoints.load_private_key(settings)
    if key is not None:
        return audit_checkpoints.public_text(key.public_key())
    pub = settings.home / audit_checkpoints.PUBLIC_FILE
    if pub.is_file():
        return pub.read_text().strip()
    raise InvalidInput(f"this workspace ({settings.home}) has no audit key; pass the signer's public key "
                       "(--public-key FILE with ed25519:<base64>)")
