"""The records of the game for two: players, tables (one per game) and chat links.

A ``Session`` (storage/models.py) keeps a game's decks. These records keep the rest:

- :class:`Player`, per Telegram user: the language the bot speaks to them, their own
  18+ confirmation, their favourite cards.
- :class:`Table`, per game (the same key as the game's ``Session``): who plays, whose
  turn it is, the pacing counters, the recent history, the room's members and which
  message in each chat carries the live card keyboard.
- :class:`ChatLink`, per private chat: the room this chat plays in, if any.

Next to each field, the merge it needs when two versions meet (see DESIGN.md,
"Records merge"): LWW register = last writer wins by the record's clock; add-remove
set with dated events = an element is in when its newest event is an add; per-key
map of LWW values; max; min.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from vechnost_bot.storage.models import RECORD_KINDS, Language, Record

__all__ = ["ROOM_GAME_BASE", "ChatLink", "Member", "Player", "Seat", "Table", "room_game_id"]

ROOM_GAME_BASE = -(10**15)
"""A room's game id is ``ROOM_GAME_BASE - <room number>``: below every Telegram chat id
(groups and channels are above -10**13), so a room's Session never collides with a chat's."""


def room_game_id(number: int) -> int:
    """The game id (Session and Table key) of room ``number``."""
    return ROOM_GAME_BASE - number


class Player(Record):
    """One person: language, own 18+ confirmation, favourites."""

    KIND: ClassVar[str] = "player"

    user_id: int
    language: Language | None = None  # LWW register
    adult_confirmed_at: float | None = None  # dated flag: max (kept until a later dated reset)
    # add-remove set with dated events: card id -> when saved / when removed;
    # a card is a favourite while its save is newer than its removal.
    saved: dict[str, float] = Field(default_factory=dict)
    unsaved: dict[str, float] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return str(self.user_id)

    def favourites(self) -> list[str]:
        """Saved card ids, oldest save first."""
        live = [(at, cid) for cid, at in self.saved.items() if at > self.unsaved.get(cid, 0.0)]
        return [cid for _at, cid in sorted(live)]


class Seat(BaseModel):
    """A player at a table: a name, and the Telegram user when the bot knows them."""

    name: str
    user_id: int | None = None


class Member(BaseModel):
    """A partner in a room: their private chat and when they joined or left."""

    chat_id: int
    name: str
    joined_at: float = 0.0
    left_at: float = 0.0

    @property
    def present(self) -> bool:
        """True while the newest event is the join."""
        return self.joined_at > self.left_at


class Table(Record):
    """Everything about one game that is not its decks."""

    KIND: ClassVar[str] = "table"

    game_id: int
    players: list[Seat] = Field(default_factory=list)  # LWW register (the whole list)
    both_answer: bool = False  # LWW register
    turn: int = 0  # LWW register: cards dealt with a turn in this game
    paced: int = 0  # LWW register: cards since the level was chosen
    pace_offered: bool = False  # LWW register: the "go deeper" offer was made at this level
    started_at: float | None = None  # min
    shared: int = 0  # LWW register: cards shared in this game
    saved_in_game: int = 0  # max: favourites saved during this game
    history: list[str] = Field(default_factory=list)  # LWW register: the last cards dealt
    opening_dealt: list[str] = Field(default_factory=list)  # LWW register: rules cards dealt
    current: str | None = None  # LWW register: the card on the table now
    names_asked: bool = False  # max
    room: bool = False  # LWW register (set once, when the room is made)
    # add-remove set with dated events, keyed by user id (Member.joined_at / left_at)
    members: dict[str, Member] = Field(default_factory=dict)
    # per-chat map of LWW values: chat id -> message id of its card with a live keyboard
    card_messages: dict[str, int] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return str(self.game_id)


class ChatLink(Record):
    """Which game a private chat plays: its own (``room`` None) or a room's."""

    KIND: ClassVar[str] = "chatlink"

    chat_id: int
    room: int | None = None  # LWW register: the room's game id

    @property
    def key(self) -> str:
        return str(self.chat_id)


# The journal and the reconciliation find record models by KIND here.
RECORD_KINDS.update({model.KIND: model for model in (Player, Table, ChatLink)})
