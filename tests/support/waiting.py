"""One way for a test to wait for something the code under test does in the background.

A test waits on the condition it needs, polled, with a bound that only catches a hang:
on a busy machine (two cores, several suites at once) a bot reply or a failback can
take many times what it takes on an idle one, and a short fixed deadline then fails a
test that is right. ``PATIENCE`` is that bound, well below pytest's own timeout.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["PATIENCE", "wait_until"]

PATIENCE: Final = 30.0
"""Seconds a test waits for the bot or the storage before calling it a hang."""


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = PATIENCE,
    interval: float = 0.005,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` (plain or async) every ``interval`` s; return the seconds it
    took, fail with ``what`` after ``timeout``."""
    started = time.monotonic()
    while True:
        met = predicate()
        if inspect.isawaitable(met):
            met = await met
        if met:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)
