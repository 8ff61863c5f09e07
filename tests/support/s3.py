"""A handle on the local S3-compatible server of the scale tests (moto's server mode, started by a fixture)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

S3_KEY, S3_SECRET, S3_REGION = "leanops-test", "leanops-test-secret", "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:  # a boto3 S3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name=S3_REGION)

    def new_bucket(self) -> str:
        name = f"leanops-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def settings_env(self, bucket: str, prefix: str = "ws") -> dict[str, str]:
        """The LEANOPS_* variables that put a deployment's artifacts in ``bucket``."""
        return {"LEANOPS_ARTIFACTS": f"s3://{bucket}/{prefix}", "LEANOPS_S3_ENDPOINT_URL": self.endpoint,
                "LEANOPS_S3_ACCESS_KEY_ID": S3_KEY, "LEANOPS_S3_SECRET_ACCESS_KEY": S3_SECRET,
                "LEANOPS_S3_REGION": S3_REGION}
