"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, every: float = 0.05, what: str | None = None) -> T:
    """Poll ``check()`` until it returns something truthy and return that value.

    Fails (AssertionError) after ``timeout`` seconds, naming ``what`` was awaited. An exception
    raised by ``check`` (an assertion that a process is still alive, say) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" if what
                                 else f"condition not met within {timeout} s")
        time.sleep(every)
