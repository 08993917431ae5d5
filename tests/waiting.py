"""The tests' one wait loop: poll until something another thread or process does becomes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.1,
               what: str = "the condition") -> T:
    """The first truthy value ``predicate`` returns; the test fails when none comes within ``timeout`` seconds.

    ``predicate`` is asked once more at the deadline, so a slow poll never fails a condition that holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
