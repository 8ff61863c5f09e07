"""The scale tests' fixtures: the local S3-compatible server and a bucket per test (``tests/support/s3.py``)."""

from __future__ import annotations

from tests.support.s3 import s3_bucket, s3_server  # noqa: F401 - fixtures
