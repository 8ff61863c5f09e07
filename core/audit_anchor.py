"""Where the checkpoint count and the newest checkpoint's hash live outside the database and the workspace.

Whoever can write the metadata database can rewrite the chain consistently and remove the events that
recorded its checkpoints; whoever can also reach the workspace folder can delete or cut the checkpoint log.
The anchor is a third place neither of them can roll back: an S3 bucket created with **Object Lock**
(``LEANOPS_AUDIT_ANCHOR=s3://bucket/prefix``). Every checkpoint written puts one object
``<prefix>/checkpoint-<n>.json`` holding ``{n, seq, hash, key, time}`` under a COMPLIANCE-mode retention of
``LEANOPS_AUDIT_ANCHOR_RETENTION_DAYS`` (no one, not even the bucket's owner, can delete or shorten it before
then). Reading takes every stored *version* (a delete marker hides an object from a plain listing, and a
second version of a key would replace its content: both are named), and ``core.audit_checkpoints.verify``
fails when the log is shorter than the newest anchored checkpoint or disagrees with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from core.errors import LeanOpsError
from db.models import utcnow

if TYPE_CHECKING:
    from core.settings import Settings


class AnchorError(LeanOpsError):
    """The anchor bucket cannot be written or read, or what it holds was tampered with."""


@dataclass(frozen=True)
class Anchored:
    """The newest checkpoint the anchor holds."""

    n: int
    seq: int
    hash: str
    key: str
    where: str  # s3://bucket/key, for messages


def configured(settings: Settings) -> bool:
    return bool(settings.audit_anchor)


def _split(settings: Settings) -> tuple[str, str]:
    rest = settings.audit_anchor.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def _client(settings: Settings) -> Any:
    import boto3

    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None,
                        aws_access_key_id=settings.s3_access_key_id or None, aws_secret_access_key=secret,
                        region_name=settings.s3_region or None)


def _key(prefix: str, n: int) -> str:
    return f"{prefix}/checkpoint-{n:012d}.json" if prefix else f"checkpoint-{n:012d}.json"


def publish(settings: Settings, *, n: int, seq: int, digest: str, key: str, time: str) -> str:
    """Put checkpoint ``n`` into the anchor bucket under Object Lock; its ``s3://`` address.

    Raises:
        AnchorError: the bucket refused it (no Object Lock on the bucket, no permission, unreachable).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split(settings)
    body = json.dumps({"n": n, "seq": seq, "hash": digest, "key": key, "time": time}, sort_keys=True).encode()
    until = utcnow() + timedelta(days=settings.audit_anchor_retention_days)
    try:
        _client(settings).put_object(Bucket=bucket, Key=_key(prefix, n), Body=body, ContentType="application/json",
                                     ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                                     ChecksumAlgorithm="SHA256")
    except (BotoCoreError, ClientError) as exc:
        raise AnchorError(f"checkpoint {n} could not be anchored in s3://{bucket}/{prefix} "
                          f"(LEANOPS_AUDIT_ANCHOR; the bucket needs Object Lock): {_reason(exc)}") from None
    return f"s3://{bucket}/{_key(prefix, n)}"


def newest(settings: Settings) -> Anchored | None:
    """The highest-numbered checkpoint the anchor holds (None when it holds none).

    Raises:
        AnchorError: the bucket cannot be read, or an object was hidden (delete marker) or given a second version.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _split(settings)
    client = _client(settings)
    try:
        versions: dict[str, list[dict[str, Any]]] = {}
        hidden: list[str] = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                           Prefix=f"{prefix}/" if prefix else ""):
            for v in page.get("Versions", []):
                versions.setdefault(v["Key"], []).append(v)
            hidden += [m["Key"] for m in page.get("DeleteMarkers", [])]
        if hidden:
            raise AnchorError(f"s3://{bucket}/{sorted(hidden)[0]} was deleted (a delete marker hides it): "
                              "the anchor was tampered with")
        twice = sorted(k for k, vs in versions.items() if len(vs) > 1)
        if twice:
            raise AnchorError(f"s3://{bucket}/{twice[0]} was written more than once: the anchor was tampered with")
        if not versions:
            return None
        last = max(versions)
        doc = json.loads(client.get_object(Bucket=bucket, Key=last, VersionId=versions[last][0]["VersionId"])
                         ["Body"].read())
        return Anchored(int(doc["n"]), int(doc["seq"]), str(doc["hash"]), str(doc["key"]), f"s3://{bucket}/{last}")
    except (BotoCoreError, ClientError) as exc:
        raise AnchorError(f"the audit anchor s3://{bucket}/{prefix} cannot be read: {_reason(exc)}") from None
    except (ValueError, KeyError, TypeError):
        raise AnchorError(f"the audit anchor s3://{bucket}/{prefix} holds an object that is not a checkpoint") \
            from None


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}"[:200]
    return type(exc).__name__
