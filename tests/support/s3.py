"""A local S3-compatible server for the tests: moto's server mode, the real S3 protocol over HTTP.

One server per test session, in its own process (so the workers a test starts reach it like any S3 endpoint);
each test gets a bucket of its own. A test module (or conftest) imports ``s3_server`` and ``s3_bucket``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    from tests.support.net import free_port

    port = free_port()
    # Its request log goes to a file: a pipe nobody reads fills up (64 KB of log lines) and the server then
    # blocks on its next write, so every later S3 call of the session times out.
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto S3 server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    yield S3Server(f"http://127.0.0.1:{port}")
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()
