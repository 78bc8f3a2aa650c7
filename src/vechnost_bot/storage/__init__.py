"""Storage: one contract (``Storage``), backends for memory, Redis and the hybrid of
Redis with a local store; records that merge (``records``)."""

from vechnost_bot.storage.base import Storage, StorageMode
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.local import LocalStore
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.records import (
    HLC,
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
    "HLC",
    "SCHEMA_VERSION",
    "ContentType",
    "HybridStorage",
    "InMemoryStorage",
    "Language",
    "LocalStore",
    "Record",
    "RedisStorage",
    "Session",
    "Storage",
    "StorageMode",
    "ThemeId",
    "UserStats",
    "connect_redis",
]
