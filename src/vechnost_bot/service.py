"""Every long-lived resource starts and stops the same way; every retry waits the same way."""

from __future__ import annotations

import abc
import random
from types import TracebackType
from typing import Self

__all__ = ["Service", "backoff"]


def backoff(attempt: int, *, base: float = 0.25, cap: float = 5.0, jitter: float = 0.5) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, …): ``base`` doubling up to ``cap``,
    times 1 to 1 + ``jitter`` at random, so that processes retrying together spread out."""
    delay = min(cap, base * float(2 ** max(0, attempt - 1)))
    return delay * (1 + random.random() * jitter)


class Service(abc.ABC):
    """``start()`` / ``stop()`` (safe twice) plus ``async with``, which runs both.

    As PTB's ``Application`` does, ``async with`` stops a service whose ``start()``
    failed, so a half-started resource never leaks.
    """

    @abc.abstractmethod
    async def start(self) -> None:
        """Acquire the resource."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release the resource; safe to call twice."""

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
