"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time


def wait_until(check, timeout: float = 10.0, every: float = 0.05):  # noqa: ANN001, ANN201
    """Poll ``check()`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
