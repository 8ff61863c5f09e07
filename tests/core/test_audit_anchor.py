"""The chain cannot be reset by deleting a file (issue 27 item 4): once a checkpoint was written, `audit verify`
fails (exit 1, naming it) when the checkpoint log is missing, shorter than the database says, or signed by
another key than the recorded one; and the count and newest hash are also kept in an S3 bucket with Object
Lock (moto's server: the real S3 protocol), which a database admin who also removes the database's records
of the checkpoints cannot roll back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from core import audit_anchor, audit_checkpoints
from core.platform.database import transaction
from core.settings import Settings, get_settings
from db.models import AuditEvent
from tests.core.test_audit_checkpoints import append, check, rewrite_consistently
from tests.scale.conftest import s3_server  # noqa: F401  (the moto S3 server fixture)
from tests.support.factories import admin_actor
from tests.support.s3 import S3_KEY, S3_REGION, S3_SECRET, S3Server

ROOT = Path(__file__).resolve().parents[2]


def _cli_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url, "LEANOPS_SCHEDULER": "off"}
    if settings.audit_anchor:
        env |= {"LEANOPS_AUDIT_ANCHOR": settings.audit_anchor, "LEANOPS_S3_ENDPOINT_URL": settings.s3_endpoint_url,
                "LEANOPS_S3_ACCESS_KEY_ID": S3_KEY, "LEANOPS_S3_SECRET_ACCESS_KEY": S3_SECRET,
                "LEANOPS_S3_REGION": S3_REGION}
    return subprocess.run([sys.executable, "cli.py", "audit", "verify", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _written(factory: sessionmaker[Session], settings: Settings, checkpoints: int = 2) -> None:
    audit_checkpoints.ensure_key(settings)
    for _ in range(checkpoints):
        append(factory, 5)
        audit_checkpoints.write(factory, settings, actor=admin_actor())
    append(factory, 3)
    assert check(factory, settings).ok


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_rewritten_chain_with_its_log_deleted_or_truncated_fails_verification(
        factory: sessionmaker[Session], settings: Settings, damage: str) -> None:
    """On SQLite and PostgreSQL; through `cli.py audit verify` (exit 1, the checkpoint named)."""
    _written(factory, settings)
    rewrite_consistently(factory, 3, {"role": "admin"})
    log = audit_checkpoints.log_path(settings)
    if damage == "deleted":
        log.unlink()
    else:
        log.write_text(log.read_text().splitlines()[0] + "\n")
    result = check(factory, settings)
    assert not result.ok and result.result.checkpoint == 2
    assert ("is missing" if damage == "deleted" else "holds 1 checkpoint(s)") in result.result.reason
    answer = _cli_verify(settings)
    doc = json.loads(answer.stdout)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert doc["ok"] is False and doc["checkpoint"] == 2 and "checkpoint 2 was written" in doc["reason"]


def test_a_log_re_signed_with_a_swapped_key_fails(factory: sessionmaker[Session], settings: Settings) -> None:
    """Who can write the workspace swaps audit.key and audit.pub and signs a fresh log for the rewritten chain:
    the key recorded in the chain when the workspace was made (audit.key_created) no longer matches."""
    from core import audit

    public, _ = audit_checkpoints.ensure_key(settings)
    with transaction(factory) as session:
        audit.record(session, "system:init", "audit.key_created", "audit", {"public_key": public})
    append(factory, 4)
    audit_checkpoints.write(factory, settings, actor=admin_actor())
    rewrite_consistently(factory, 2, {"i": 99})
    audit_checkpoints.log_path(settings).unlink()
    audit_checkpoints.key_path(settings).unlink()
    (settings.home / audit_checkpoints.PUBLIC_FILE).unlink()
    with transaction(factory) as session:  # and removes the record of the old checkpoint
        session.execute(delete(AuditEvent).where(AuditEvent.action == "audit.checkpointed"))
    audit_checkpoints.ensure_key(settings)  # a key of their own
    with transaction(factory) as session:
        seq, digest = audit_checkpoints._head(session)
    audit_checkpoints._append(settings, audit_checkpoints._key_or_fail(settings), seq=seq, digest=digest)
    result = check(factory, settings)
    assert not result.ok and "not the key recorded when the workspace was made" in result.result.reason


@pytest.fixture
def anchored(s3_server: S3Server, settings: Settings) -> Settings:  # noqa: F811
    bucket = f"anchor-{os.urandom(5).hex()}"
    s3_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return get_settings(home=settings.home, db_url=settings.db_url, scheduler="off", audit_anchor=f"s3://{bucket}/ws",
                        audit_anchor_retention_days=1, s3_endpoint_url=s3_server.endpoint, s3_access_key_id=S3_KEY,
                        s3_secret_access_key=S3_SECRET, s3_region=S3_REGION)


def test_the_object_lock_anchor_catches_what_a_db_admin_and_the_workspace_owner_remove(
        factory: sessionmaker[Session], anchored: Settings, s3_server: S3Server) -> None:  # noqa: F811
    settings = anchored
    _written(factory, settings)
    bucket = settings.audit_anchor.removeprefix("s3://").split("/")[0]
    client = s3_server.client()
    newest = audit_anchor.newest(settings)
    assert newest is not None and newest.n == 2
    assert newest.hash == audit_checkpoints.read_log(settings)[1][0].hash
    # the locked object cannot be deleted or shortened, not even by the bucket's owner
    version = client.list_object_versions(Bucket=bucket)["Versions"][0]
    with pytest.raises(Exception, match="AccessDenied|locked|ObjectLocked|retention"):
        client.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    # a database admin rewrites the chain AND removes every record of the checkpoints; the workspace's log goes
    rewrite_consistently(factory, 3, {"role": "admin"})
    with transaction(factory) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.action.in_(["audit.checkpointed", "audit.key_created"])))
    rewrite_consistently(factory, 1, {"i": 0})
    audit_checkpoints.log_path(settings).unlink()
    result = check(factory, settings)
    assert not result.ok and result.result.checkpoint == 2
    assert "Object Lock anchor" in result.result.reason and "is missing" in result.result.reason
    answer = _cli_verify(settings)
    assert answer.returncode == 1 and "Object Lock anchor" in json.loads(answer.stdout)["reason"]
    # hiding the anchor's objects behind a delete marker is named too
    client.delete_object(Bucket=bucket, Key=version["Key"])
    with pytest.raises(audit_anchor.AnchorError, match="delete marker"):
        audit_anchor.newest(settings)


def test_an_anchor_bucket_without_object_lock_is_refused_by_name(
        factory: sessionmaker[Session], anchored: Settings, s3_server: S3Server) -> None:  # noqa: F811
    plain = s3_server.new_bucket()
    settings = get_settings(home=anchored.home, db_url=anchored.db_url, scheduler="off",
                            audit_anchor=f"s3://{plain}/ws", s3_endpoint_url=s3_server.endpoint,
                            s3_access_key_id=S3_KEY, s3_secret_access_key=S3_SECRET, s3_region=S3_REGION)
    audit_checkpoints.ensure_key(settings)
    append(factory, 2)
    with pytest.raises(audit_anchor.AnchorError, match=f"s3://{plain}/ws .*Object Lock"):
        audit_checkpoints.write(factory, settings, actor=admin_actor())
    # the checkpoint itself is in the log: the next anchored one covers it
    assert len(audit_checkpoints.read_log(settings)) == 1
