"""Every long-lived resource starts and stops the same way."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["Service"]


class Service(abc.ABC):
    """``start()`` / ``stop()`` (safe twice) plus ``async with``, which runs both."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Acquire the resource."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release the resource; safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
