"""The records of the game for two: players, tables (one per game) and chat links.

A ``Session`` (the storage's record) keeps a game's decks. These records keep the rest:

- :class:`Player`, per Telegram user: the language the bot speaks to them, their own
  18+ confirmation, their favourite cards.
- :class:`Table`, per game (the same key as the game's ``Session``): who plays, whose
  turn it is, the pacing counters, the recent history, a room's members and which
  message in each chat carries the live card keyboard.
- :class:`ChatLink`, per private chat: the room this chat plays in, if any.

Every field holds plain JSON values (no nested models) and names its merge policy
(storage/records.py): LWW (last writer wins by the hybrid logical clock), a dated
flag, an add-remove set with dated events (its list is in the order the items were
added), a per-key map of LWW values. Handlers just change fields; the storage dates
the changes and merges versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import Field

from vechnost_bot.storage.records import (
    LWW,
    RECORD_KINDS,
    AddRemoveSet,
    DatedFlag,
    Key,
    Language,
    PerKey,
    Record,
)

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

    user_id: Annotated[int, Key()]
    language: Annotated[Language | None, LWW()] = None
    # own 18+ confirmation: stays until a later, dated reset
    adult_confirmed: Annotated[bool, DatedFlag()] = False
    # saved card ids, in save order
    favourites: Annotated[list[str], AddRemoveSet()] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Seat:
    """A player at a table: a name, and the Telegram user when the bot knows them."""

    name: str
    user_id: int | None = None


class Table(Record):
    """Everything about one game that is not its decks."""

    KIND: ClassVar[str] = "table"

    game_id: Annotated[int, Key()]
    # The seats, in turn order: both lists are always written together.
    player_names: Annotated[list[str], LWW()] = Field(default_factory=list)
    player_ids: Annotated[list[int], LWW()] = Field(default_factory=list)  # NO_USER: name only
    both_answer: Annotated[bool, LWW()] = False
    turn: Annotated[int, LWW()] = 0  # cards dealt with a turn in this game
    paced: Annotated[int, LWW()] = 0  # cards since the level was chosen
    pace_offered: Annotated[bool, LWW()] = False  # "go deeper" was offered at this level
    started_at: Annotated[float | None, LWW()] = None  # when this game's first card came
    shared: Annotated[int, LWW()] = 0  # cards shared in this game
    saved_in_game: Annotated[int, LWW()] = 0  # favourites saved during this game
    history: Annotated[list[str], LWW()] = Field(default_factory=list)  # last cards dealt
    opening_dealt: Annotated[list[str], LWW()] = Field(default_factory=list)
    current: Annotated[str | None, LWW()] = None  # the card on the table now
    names_asked: Annotated[bool, LWW()] = False
    room: Annotated[bool, LWW()] = False  # set once, when the room is made
    # user ids of the partners present, in the order they came in
    members: Annotated[list[str], AddRemoveSet()] = Field(default_factory=list)
    member_chats: Annotated[dict[str, int], PerKey(LWW())] = Field(default_factory=dict)
    member_names: Annotated[dict[str, str], PerKey(LWW())] = Field(default_factory=dict)
    # chat id -> message id of its card with a live keyboard
    card_messages: Annotated[dict[str, int], PerKey(LWW())] = Field(default_factory=dict)

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

    chat_id: Annotated[int, Key()]
    room: Annotated[int | None, LWW()] = None  # the room's game id


# The local store, the legacy journal and the reconciliation find record models by KIND
# here (an unknown kind is quarantined).
RECORD_KINDS.update({model.KIND: model for model in (Player, Table, ChatLink)})
