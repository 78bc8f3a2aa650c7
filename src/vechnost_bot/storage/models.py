"""The records the bot keeps. Every record is versioned for optimistic concurrency
and for "newer wins" reconciliation after a failover."""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RECORD_KINDS",
    "SCHEMA_VERSION",
    "ContentType",
    "Language",
    "Record",
    "Session",
    "ThemeId",
    "UserStats",
]

SCHEMA_VERSION = 1
"""Bumped when a record's shape changes incompatibly; part of every Redis key."""

Language = Literal["ru", "en", "cs"]
ThemeId = Literal["acquaintance", "couples", "provocation", "sex"]
ContentType = Literal["questions", "tasks"]


class Record(BaseModel):
    """A versioned record. ``version`` grows by one on every write; ``updated_at``
    (unix seconds) breaks ties between instances that wrote the same version."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    KIND: ClassVar[str]

    version: int = 0
    updated_at: float = 0.0

    @property
    @abc.abstractmethod
    def key(self) -> str:
        """The record's id within its kind (a chat id, a user id)."""

    def newer_than(self, other: Record | None) -> bool:
        """True when this record should win over ``other`` in a reconciliation."""
        if other is None:
            return True
        return (self.version, self.updated_at) > (other.version, other.updated_at)


class Session(Record):
    """One chat's game: language, where the players are, and which cards they drew."""

    KIND: ClassVar[str] = "session"

    chat_id: int
    language: Language | None = None
    theme: ThemeId | None = None
    level: int | None = None
    content: ContentType | None = None
    # deck key ("acquaintance:1:questions") -> ids drawn from it, in order
    drawn: dict[str, list[str]] = Field(default_factory=dict)
    adult_confirmed: bool = False
    last_card: str | None = None

    @property
    def key(self) -> str:
        return str(self.chat_id)


class UserStats(Record):
    """What one player did, for the welcome back and for the operator's curiosity."""

    KIND: ClassVar[str] = "user"

    user_id: int
    cards_drawn: int = 0
    games_started: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0

    @property
    def key(self) -> str:
        return str(self.user_id)


RECORD_KINDS: dict[str, type[Record]] = {model.KIND: model for model in (Session, UserStats)}
"""Every record model by its KIND (what a journal file or a Redis key names)."""
