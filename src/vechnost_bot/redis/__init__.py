"""The local Redis server: find, adopt or start it; watch it; stop what we started."""

from vechnost_bot.redis.events import (
    RedisEndpoint,
    RedisEvent,
    RedisObserver,
    RedisSource,
    RedisState,
)

__all__ = ["RedisEndpoint", "RedisEvent", "RedisObserver", "RedisSource", "RedisState"]
