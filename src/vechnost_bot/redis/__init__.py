"""The local Redis server: find, adopt or start it; watch it; stop what we started."""

from vechnost_bot.redis.autostart import RedisAutoStartManager
from vechnost_bot.redis.events import (
    RedisEndpoint,
    RedisEvent,
    RedisObserver,
    RedisSource,
    RedisState,
)
from vechnost_bot.redis.manager import RedisManager

__all__ = [
    "RedisAutoStartManager",
    "RedisEndpoint",
    "RedisEvent",
    "RedisManager",
    "RedisObserver",
    "RedisSource",
    "RedisState",
]
