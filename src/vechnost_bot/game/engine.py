"""The game's rules, as pure functions on the game's records.

Nothing here does I/O: handlers read a record from storage, apply one of these
functions inside ``storage.update_session`` (or another update, which may retry it on
a conflict), and act on the returned outcome. The decks live in a :class:`Session`;
who plays, whose turn it is, pacing and history in a :class:`Table`; a person's
language, 18+ confirmation and favourites in a :class:`Player`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from vechnost_bot.game.content import THEMES, Card, Deck, Library, deck_key
from vechnost_bot.storage.game_records import Player, Seat, Table
from vechnost_bot.storage.records import ContentType, Language, Session, ThemeId

__all__ = [
    "DEFAULT_PACE",
    "HISTORY",
    "DealInfo",
    "DrawOutcome",
    "JoinResult",
    "Step",
    "Summary",
    "adult_ready",
    "can_draw",
    "choose_content",
    "choose_language",
    "choose_level",
    "choose_theme",
    "closing_card",
    "confirm_adult",
    "current_deck",
    "deeper_level",
    "draw",
    "drawer_of_current",
    "end_game",
    "go_back",
    "is_noted",
    "join_room",
    "leave_room",
    "mark_swapped",
    "needs_adult_confirmation",
    "next_drawer",
    "next_opening",
    "note_update",
    "opening_cards",
    "parse_names",
    "previous_card",
    "progress",
    "record_deal",
    "record_opening",
    "record_swap",
    "reset",
    "reset_table",
    "reshuffle",
    "roles",
    "seat",
    "set_favourite",
    "set_names",
    "shown_deal",
    "start_level",
    "step",
    "swap",
    "theme_levels",
    "undo_deal",
    "undraw",
]

DEFAULT_PACE: Final = 12
"""Cards at one level before the bot offers to go deeper (the issue asks for 12–15)."""

HISTORY: Final = 30
"""How many dealt cards a table remembers for "previous card"."""

RECENT_UPDATES: Final = 8
"""How many update ids a session remembers (``Session.recent_updates``): Telegram
redelivers one within seconds, while at most a partner's few taps came in between."""


# -- the library's view of a theme ------------------------------------------------------------
def theme_levels(library: Library, theme: ThemeId) -> tuple[int, ...]:
    """The levels ``theme`` offers, from the decks loaded."""
    return library.levels(theme)


def opening_cards(library: Library, theme: ThemeId) -> tuple[Card, ...]:
    """The theme's opening cards (its rules), dealt first in a new game."""
    return library.opening(theme)


def closing_card(library: Library, theme: ThemeId) -> Card | None:
    """The theme's closing ritual, dealt when the players end a game."""
    return library.closing(theme)


Step = Literal["theme", "level", "content", "deck"]
"""Where a game is: which menu its players should see now."""


# -- navigation ---------------------------------------------------------------------------------
def step(session: Session, library: Library) -> Step:
    """The menu this game is at."""
    if session.theme is None:
        return "theme"
    if session.level is None or session.level not in theme_levels(library, session.theme):
        return "level"
    if session.content is None or session.content not in THEMES[session.theme].contents:
        return "content"
    return "deck"


def needs_adult_confirmation(theme: ThemeId, *, confirmed: bool) -> bool:
    """True when ``theme`` is 18+ and the people who must confirm have not all done so."""
    return THEMES[theme].adult and not confirmed


def confirm_adult(player: Player) -> Player:
    """Record this person's own 18+ confirmation (the storage dates it)."""
    player.adult_confirmed = True
    return player


def adult_ready(table: Table, players: Mapping[int, Player], user_id: int | None) -> bool:
    """True when everyone who must confirm 18+ has: the person asking, and every seated
    player the bot knows (a group's members, a room's partners)."""
    needed = {seat.user_id for seat in table.seats() if seat.user_id is not None}
    if user_id is not None:
        needed.add(user_id)
    if not needed:
        return False
    return all(
        (player := players.get(uid)) is not None and player.adult_confirmed for uid in needed
    )


def choose_theme(
    session: Session, library: Library, theme: ThemeId, *, adult_ok: bool = False
) -> Session:
    """Pick a theme. A single level or content type is chosen at once.

    Raises ``PermissionError`` for an 18+ theme without everyone's confirmation.
    """
    if needs_adult_confirmation(theme, confirmed=adult_ok):
        raise PermissionError("the 18+ theme needs a confirmation first")
    levels = theme_levels(library, theme)
    contents = THEMES[theme].contents
    session.theme = theme
    session.level = levels[0] if len(levels) == 1 else None
    session.content = contents[0] if len(contents) == 1 else None
    return session


def choose_level(session: Session, library: Library, level: int) -> Session:
    """Pick a level of the current theme; ``ValueError`` when it has no such level."""
    if session.theme is None or level not in theme_levels(library, session.theme):
        raise ValueError(f"level {level} is not available here")
    contents = THEMES[session.theme].contents
    session.level = level
    if session.content not in contents:
        session.content = contents[0] if len(contents) == 1 else None
    return session


def choose_content(session: Session, content: ContentType) -> Session:
    """Pick questions or tasks; ``ValueError`` when the theme has no such content."""
    if session.theme is None or content not in THEMES[session.theme].contents:
        raise ValueError(f"content {content} is not available here")
    if session.level is None:
        raise ValueError("choose a level first")
    session.content = content
    return session


def deeper_level(session: Session, library: Library) -> int | None:
    """The level after the current one, or None at the theme's last level."""
    if session.theme is None or session.level is None:
        return None
    later = [lv for lv in theme_levels(library, session.theme) if lv > session.level]
    return later[0] if later else None


def go_back(session: Session, library: Library) -> Session:
    """One meaningful step back: deck → content → level → theme (skipping single choices)."""
    here = step(session, library)
    if session.theme is None:
        return session
    several_levels = len(theme_levels(library, session.theme)) > 1
    if here == "deck" and len(THEMES[session.theme].contents) > 1:
        session.content = None
    elif here in {"deck", "content"} and several_levels:
        session.level = None
        session.content = None
    else:
        session.theme = None
        session.level = None
        session.content = None
    return session


def reset(session: Session) -> Session:
    """Forget the game's decks (theme, level, drawn cards)."""
    session.theme = None
    session.level = None
    session.content = None
    session.drawn = {}
    session.last_card = None
    return session


def current_deck(session: Session, library: Library) -> Deck | None:
    """The deck the session is playing, or None before a deck is chosen."""
    if step(session, library) != "deck" or session.theme is None:
        return None
    if session.level is None or session.content is None:
        return None
    return library.deck(session.theme, session.level, session.content)


def progress(session: Session, deck: Deck) -> tuple[int, int]:
    """``(drawn, total)`` for ``deck`` — ids no longer in the deck do not count."""
    drawn = set(session.drawn.get(deck.key, ())) & set(deck.ids)
    return len(drawn), len(deck)


# -- drawing ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DrawOutcome:
    """What a draw gave: a card, or ``exhausted`` when every card was drawn."""

    card: Card | None
    drawn: int
    total: int

    @property
    def exhausted(self) -> bool:
        """True when the deck had no card left to give."""
        return self.card is None


def draw(
    session: Session, library: Library, rng: random.Random | None = None
) -> tuple[Session, DrawOutcome]:
    """Draw a card not drawn before in this session; ``ValueError`` before a deck is chosen."""
    deck = current_deck(session, library)
    if deck is None:
        raise ValueError("choose a theme, level and content type first")
    already = session.drawn.get(deck.key, [])
    seen = set(already)
    remaining = [card_id for card_id in deck.ids if card_id not in seen]
    if not remaining:
        return session, DrawOutcome(None, *progress(session, deck))
    # A card drawn but never delivered (see undraw) is dealt again first.
    if session.last_card in remaining:
        card_id = session.last_card
    else:
        card_id = (rng or random).choice(remaining)
    session.drawn = {**session.drawn, deck.key: [*already, card_id]}
    session.last_card = card_id
    card = deck.get(card_id)
    return session, DrawOutcome(card, *progress(session, deck))


def swap(
    session: Session, library: Library, card_id: str, rng: random.Random | None = None
) -> tuple[Session, DrawOutcome]:
    """Pass on ``card_id``: it goes back into the deck (not used up) and another card is
    drawn in its place. With no other card left the same card stays (``card`` is it)."""
    deck = current_deck(session, library)
    if deck is None or deck.get(card_id) is None:
        raise ValueError("that card is not on the table")
    already = [cid for cid in session.drawn.get(deck.key, []) if cid != card_id]
    seen = {*already, card_id}
    remaining = [cid for cid in deck.ids if cid not in seen]
    chosen = (rng or random).choice(remaining) if remaining else card_id
    session.drawn = {**session.drawn, deck.key: [*already, chosen]}
    session.last_card = chosen
    return session, DrawOutcome(deck.get(chosen), *progress(session, deck))


def mark_drawn(session: Session, deck: str, card_id: str) -> Session:
    """Record that ``card_id`` of ``deck`` was dealt (chosen by :func:`draw` from an
    earlier state): applied again to a newer state it stays the same card, drawn once."""
    drawn = session.drawn.get(deck, [])
    if card_id not in drawn:
        session.drawn = {**session.drawn, deck: [*drawn, card_id]}
    session.last_card = card_id
    return session


def mark_swapped(session: Session, deck: str, old: str, new: str) -> Session:
    """Record that ``old`` (passed on) went back into ``deck`` and ``new`` (chosen by
    :func:`swap` from an earlier state) was dealt in its place."""
    drawn = [card_id for card_id in session.drawn.get(deck, []) if card_id != old]
    if new not in drawn:
        drawn.append(new)
    session.drawn = {**session.drawn, deck: drawn}
    session.last_card = new
    return session


def note_update(session: Session, update_id: int) -> Session:
    """Remember that the records written with this session hold ``update_id``'s effect."""
    kept = [seen for seen in session.recent_updates if seen != update_id]
    session.recent_updates = [*kept, update_id][-RECENT_UPDATES:]
    return session


def is_noted(session: Session, update_id: int) -> bool:
    """True when ``update_id``'s effect is already in this game's records: Telegram sent
    it again (a replica died after its write, before its answer)."""
    return update_id in session.recent_updates


def undraw(session: Session, deck: str, card_id: str) -> Session:
    """Put back a card that could not be delivered; the next draw from its deck gives it.

    ``last_card`` keeps naming it: a ``last_card`` that is not among the drawn ids is a
    card still owed to the players.
    """
    drawn = session.drawn.get(deck, [])
    if card_id in drawn:
        session.drawn = {**session.drawn, deck: [i for i in drawn if i != card_id]}
        session.last_card = card_id
    return session


def owe(session: Session, card_id: str) -> Session:
    """A card chosen but certainly not delivered (and not recorded as drawn): the next
    draw from its deck deals it, since ``last_card`` names a card not drawn yet."""
    session.last_card = card_id
    return session


def reshuffle(session: Session, theme: ThemeId, level: int, content: ContentType) -> Session:
    """Put every card of one deck back."""
    drawn = dict(session.drawn)
    drawn.pop(deck_key(theme, level, content), None)
    session.drawn = drawn
    # The deck's last card was seen: it must not come first in the new round.
    session.last_card = None
    return session


# -- players and turns --------------------------------------------------------------------------
MAX_NAME: Final = 32
_NAME_SPLIT: Final = re.compile(r"\s*(?:,|&|\+|/|\s(?:and|и|a|та|і)\s)\s*", re.IGNORECASE)


def parse_names(text: str) -> tuple[str, str] | None:
    """Two players' names from ``"Anna and Tom"`` (also ``и``, ``a``, ``,``, ``&``), or None."""
    parts = [" ".join(part.split()) for part in _NAME_SPLIT.split(f" {text.strip()} ")]
    names = [part.strip(" .!") for part in parts if part.strip(" .!")]
    if len(names) != 2 or names[0].casefold() == names[1].casefold():
        return None
    if any(len(name) > MAX_NAME or len(name.split()) > 3 or "/" in name for name in names):
        return None
    return names[0], names[1]


def set_names(table: Table, names: Sequence[str]) -> Table:
    """Seat two players by name (one phone for both: anyone may tap)."""
    table.set_seats([Seat(name) for name in names])
    table.names_asked = True
    table.turn = 0
    return table


def seat(table: Table, user_id: int, name: str) -> Table:
    """Seat a group member who takes part, while there is a free seat (two players)."""
    seats = [seat for seat in table.seats() if seat.user_id is not None]
    if len(seats) < 2 and all(seat.user_id != user_id for seat in seats):
        table.set_seats([*seats, Seat(name, user_id)])
    return table


def next_drawer(table: Table) -> Seat | None:
    """Who draws the next card: its asker. None while anyone may (names on one phone)."""
    seats = table.seats()
    if len(seats) < 2 or any(seat.user_id is None for seat in seats):
        return None
    return seats[table.turn % 2]


def can_draw(table: Table, user_id: int | None) -> bool:
    """True when ``user_id`` may draw now: it is their turn, or turns are not bound to people."""
    drawer = next_drawer(table)
    return drawer is None or drawer.user_id == user_id


def roles(table: Table, turn: int | None = None) -> tuple[str, str] | None:
    """``(first, second)`` names for the card at ``turn`` (default: the next one): who asks
    and who answers, or (both-answer rule) who answers first and who second."""
    seats = table.seats()
    if len(seats) < 2:
        return None
    at = table.turn if turn is None else turn
    first = seats[at % 2].name
    second = seats[(at + 1) % 2].name
    return first, second


@dataclass(frozen=True, slots=True)
class DealInfo:
    """What a dealt card means for the table: its roles, and whether to offer more depth."""

    roles: tuple[str, str] | None
    offer_deeper: bool
    paced: int


def start_level(table: Table) -> Table:
    """A level was chosen: the pacing counts from zero again."""
    table.paced = 0
    table.pace_offered = False
    return table


def record_deal(
    table: Table, card: Card, *, now: float, pace: int = DEFAULT_PACE
) -> tuple[Table, DealInfo]:
    """A deck card was dealt: roles for it, then the turn passes; the pacing counts it."""
    who = roles(table)
    table.turn += 1
    table.paced += 1
    table.shared += 1
    table.started_at = table.started_at if table.started_at is not None else now
    table.history = [*table.history, card.id][-HISTORY:]
    table.current = card.id
    offer = table.paced >= pace and not table.pace_offered
    if offer:
        table.pace_offered = True
    return table, DealInfo(who, offer, table.paced)


def shown_deal(table: Table, pace: int = DEFAULT_PACE) -> DealInfo:
    """What :func:`record_deal` said of the card on the table, read back from the table it
    wrote (to show that card again as it was first shown). Exact while ``pace`` is the
    pace the card was dealt with."""
    offer = table.pace_offered and table.paced == pace
    return DealInfo(roles(table, table.turn - 1), offer, table.paced)


def undo_deal(table: Table, card_id: str, info: DealInfo) -> Table:
    """Take back :func:`record_deal` for a card that could not be delivered."""
    if table.history and table.history[-1] == card_id:
        table.history = table.history[:-1]
        table.turn = max(0, table.turn - 1)
        table.paced = max(0, table.paced - 1)
        table.shared = max(0, table.shared - 1)
        table.current = table.history[-1] if table.history else None
        if info.offer_deeper:
            table.pace_offered = False
    return table


def drawer_of_current(table: Table) -> Seat | None:
    """Who drew the card on the table (its asker), when turns are bound to people."""
    if next_drawer(table) is None or table.turn == 0:
        return None
    return table.seats()[(table.turn - 1) % 2]


def next_opening(table: Table, library: Library, theme: ThemeId) -> Card | None:
    """The theme's next opening card not dealt yet in this game, or None."""
    for card in opening_cards(library, theme):
        if card.id not in table.opening_dealt:
            return card
    return None


def record_opening(table: Table, card: Card, *, now: float) -> Table:
    """An opening card was dealt: it is not dealt again in this game (and takes no turn)."""
    if card.id not in table.opening_dealt:
        table.opening_dealt = [*table.opening_dealt, card.id]
    table.started_at = table.started_at if table.started_at is not None else now
    table.current = card.id
    return table


def record_swap(table: Table, old: str, new: Card) -> Table:
    """A card was passed on: the new one takes its place in the history; the turn stays."""
    history = list(table.history)
    if history and history[-1] == old:
        history[-1] = new.id
    else:
        history.append(new.id)
    table.history = history[-HISTORY:]
    table.current = new.id
    return table


def previous_card(table: Table, steps: int) -> str | None:
    """The card dealt ``steps`` before the current one, or None when history is shorter."""
    if steps < 1 or steps >= len(table.history):
        return None
    return table.history[-1 - steps]


@dataclass(frozen=True, slots=True)
class Summary:
    """How the game went, for the goodbye."""

    cards: int
    minutes: int
    saved: int


def end_game(table: Table, *, now: float) -> tuple[Table, Summary]:
    """End the game: its summary; the counters, history and opening start afresh."""
    minutes = int((now - table.started_at) // 60) if table.started_at is not None else 0
    summary = Summary(table.shared, max(0, minutes), table.saved_in_game)
    table.shared = 0
    table.saved_in_game = 0
    table.started_at = None
    table.opening_dealt = []
    table.history = []
    table.current = None
    table.paced = 0
    table.pace_offered = False
    return table, summary


def reset_table(table: Table) -> Table:
    """Start everything over: the game's counters and names go; a room keeps its members."""
    table, _summary = end_game(table, now=0.0)
    table.turn = 0
    table.both_answer = False
    if not table.room:
        table.set_seats([])
        table.names_asked = False
    return table


def set_favourite(player: Player, card_id: str, *, saved: bool) -> Player:
    """Save ``card_id`` or take it out of the favourites: the same however often it is
    applied (a redelivered tap does not undo it)."""
    if not saved:
        player.favourites = [cid for cid in player.favourites if cid != card_id]
    elif card_id not in player.favourites:
        player.favourites = [*player.favourites, card_id]
    return player


# -- rooms --------------------------------------------------------------------------------------
JoinResult = Literal["joined", "back", "already", "full"]


def join_room(table: Table, user_id: int, chat_id: int, name: str) -> tuple[Table, JoinResult]:
    """A partner opens the invite: at most two people are present in a room at once."""
    key = str(user_id)
    if key in table.members:
        return table, "already"
    if len(table.members) >= 2:
        return table, "full"
    came_back = key in table.member_chats
    table.members = [*table.members, key]
    table.member_chats = {**table.member_chats, key: chat_id}
    table.member_names = {**table.member_names, key: name}
    _seat_members(table)
    return table, "back" if came_back else "joined"


def leave_room(table: Table, user_id: int) -> Table:
    """A partner leaves: the room and its decks stay for the other (and for a return)."""
    key = str(user_id)
    if key in table.members:
        table.members = [uid for uid in table.members if uid != key]
        chat = str(table.member_chats.get(key))
        table.card_messages = {k: v for k, v in table.card_messages.items() if k != chat}
        _seat_members(table)
    return table


def _seat_members(table: Table) -> None:
    # The partners who stay keep their order (it decides whose turn it is); a newcomer
    # or a returning partner sits after them.
    seated = [seat.user_id for seat in table.seats()]
    order = sorted(table.members, key=lambda uid: (
        seated.index(int(uid)) if int(uid) in seated else len(seated)
    ))  # fmt: skip
    table.set_seats([Seat(table.member_names.get(uid, ""), int(uid)) for uid in order])


def choose_language(player: Player, language: Language) -> Player:
    """The language the bot speaks to this person; the game and its progress stay."""
    player.language = language
    return player
