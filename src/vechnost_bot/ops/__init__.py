"""Operations: the health HTTP server, the status snapshot, ``vechnost status`` and ``logs``.

Imported lazily, so that the Redis lifecycle can use :mod:`vechnost_bot.ops.snapshot`
without loading the HTTP server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vechnost_bot.ops.health import HealthServer, mask_secrets

__all__ = ["HealthServer", "mask_secrets"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vechnost_bot.ops import health

        return getattr(health, name)
    raise AttributeError(name)
