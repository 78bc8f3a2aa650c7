"""Storage: one contract (``Storage``), three backends (memory, Redis, hybrid)."""

from vechnost_bot.storage.base import Storage, StorageMode
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.models import (
    SCHEMA_VERSION,
    ContentType,
    Language,
    Record,
    Session,
    ThemeId,
    UserStats,
)
from vechnost_bot.storage.redis import RedisStorage, connect_redis

__all__ = [
    "SCHEMA_VERSION",
    "ContentType",
    "HybridStorage",
    "InMemoryStorage",
    "Language",
    "Record",
    "RedisStorage",
    "Session",
    "Storage",
    "StorageMode",
    "ThemeId",
    "UserStats",
    "connect_redis",
]
