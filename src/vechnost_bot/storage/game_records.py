"""The records of the game for two: players, tables (one per game) and chat links.

A ``Session`` (the storage's record) keeps a game's decks. These records keep the rest:

- :class:`Player`, per Telegram user: the language the bot speaks to them, their own
  18+ confirmation, their favourite cards.
- :class:`Table`, per game (the same key as the game's ``Session``): who plays, whose
  turn it is, the pacing counters, the recent history, a room's members and which
  message in each chat carries the live card keyboard.
- :class:`ChatLink`, per private chat: the room this chat plays in, if any.

Every field holds plain JSON values (no nested models), and the comment beside it
names the merge it needs when two versions meet (DESIGN.md, "Records merge"): key;
LWW = last writer wins by the record's hybrid logical clock; dated flag; add-remove
set with dated events (its list is in the order the items were added); per-key map
of LWW values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from vechnost_bot.storage.models import RECORD_KINDS, Language, Record

__all__ = ["ROOM_GAME_BASE", "ChatLink", "Player", "Seat", "Table", "room_game_id"]

ROOM_GAME_BASE = -(10**15)
"""A room's game id is ``ROOM_GAME_BASE - <room number>``: below every Telegram chat id
(groups and channels are above -10**13), so a room's Session never collides with a chat's."""

NO_USER = 0
"""``Table.player_ids`` entry of a player known by name only (two names on one phone)."""


def room_game_id(number: int) -> int:
    """The game id (Session and Table key) of room ``number``."""
    return ROOM_GAME_BASE - number


class Player(Record):
    """One person: language, own 18+ confirmation, favourites."""

    KIND: ClassVar[str] = "player"

    user_id: int  # key
    language: Language | None = None  # LWW
    adult_confirmed: bool = False  # dated flag: stays until a later, dated reset
    favourites: list[str] = Field(default_factory=list)  # add-remove set, in save order

    @property
    def key(self) -> str:
        return str(self.user_id)


@dataclass(frozen=True, slots=True)
class Seat:
    """A player at a table: a name, and the Telegram user when the bot knows them."""

    name: str
    user_id: int | None = None


class Table(Record):
    """Everything about one game that is not its decks."""

    KIND: ClassVar[str] = "table"

    game_id: int  # key
    # The seats, in turn order. Both lists are LWW and always written together.
    player_names: list[str] = Field(default_factory=list)  # LWW
    player_ids: list[int] = Field(default_factory=list)  # LWW (NO_USER: a name only)
    both_answer: bool = False  # LWW
    turn: int = 0  # LWW: cards dealt with a turn in this game
    paced: int = 0  # LWW: cards since the level was chosen
    pace_offered: bool = False  # LWW: the "go deeper" offer was made at this level
    started_at: float | None = None  # LWW: when this game's first card came
    shared: int = 0  # LWW: cards shared in this game
    saved_in_game: int = 0  # LWW: favourites saved during this game
    history: list[str] = Field(default_factory=list)  # LWW: the last cards dealt
    opening_dealt: list[str] = Field(default_factory=list)  # LWW: opening cards dealt
    current: str | None = None  # LWW: the card on the table now
    names_asked: bool = False  # LWW
    room: bool = False  # LWW (set once, when the room is made)
    members: list[str] = Field(default_factory=list)  # add-remove set: user ids present
    member_chats: dict[str, int] = Field(default_factory=dict)  # per-key LWW: user -> chat
    member_names: dict[str, str] = Field(default_factory=dict)  # per-key LWW: user -> name
    # per-key LWW: chat id -> message id of its card with a live keyboard
    card_messages: dict[str, int] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return str(self.game_id)

    def seats(self) -> list[Seat]:
        """The players, in turn order."""
        return [
            Seat(name, None if uid == NO_USER else uid)
            for name, uid in zip(self.player_names, self.player_ids, strict=False)
        ]

    def partners(self) -> list[tuple[int, int]]:
        """``(user id, private chat id)`` of each partner present in the room."""
        return [(int(uid), self.member_chats[uid]) for uid in self.members
                if uid in self.member_chats]  # fmt: skip

    def set_seats(self, seats: list[Seat]) -> None:
        """Seat these players, in turn order."""
        self.player_names = [seat.name for seat in seats]
        self.player_ids = [NO_USER if seat.user_id is None else seat.user_id for seat in seats]


class ChatLink(Record):
    """Which game a private chat plays: its own (``room`` None) or a room's."""

    KIND: ClassVar[str] = "chatlink"

    chat_id: int  # key
    room: int | None = None  # LWW: the room's game id

    @property
    def key(self) -> str:
        return str(self.chat_id)


# The journal and the reconciliation find record models by KIND here.
RECORD_KINDS.update({model.KIND: model for model in (Player, Table, ChatLink)})
