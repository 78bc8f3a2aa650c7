"""Operations: the health HTTP server, ``vechnost status`` and ``vechnost logs``.

``status`` and ``logs`` are imported by the CLI only when chosen.
"""

from vechnost_bot.ops.health import HealthServer, mask_secrets

__all__ = ["HealthServer", "mask_secrets"]
