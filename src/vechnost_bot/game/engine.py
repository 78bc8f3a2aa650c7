"""The game's rules, as pure functions on a :class:`Session`.

Nothing here does I/O: handlers read a session from storage, apply one of these
functions inside ``storage.update_session`` (which may retry it on a conflict),
and act on the returned outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from vechnost_bot.game.content import THEMES, Card, Deck, Library, deck_key
from vechnost_bot.storage.records import ContentType, Language, Session, ThemeId

__all__ = [
    "DrawOutcome",
    "Step",
    "choose_content",
    "choose_language",
    "choose_level",
    "choose_theme",
    "confirm_adult",
    "current_deck",
    "draw",
    "go_back",
    "needs_adult_confirmation",
    "progress",
    "reset",
    "reshuffle",
    "step",
    "undraw",
]

Step = Literal["language", "theme", "level", "content", "deck"]
"""Where a chat is: which menu it should see now."""


def step(session: Session, library: Library) -> Step:
    """The menu this session is at."""
    if session.language is None:
        return "language"
    if session.theme is None:
        return "theme"
    theme = THEMES[session.theme]
    if session.level is None or session.level not in library.levels(session.theme):
        return "level"
    if session.content is None or session.content not in theme.contents:
        return "content"
    return "deck"


def choose_language(session: Session, language: Language) -> Session:
    """Switch language; the game and its progress stay as they are."""
    session.language = language
    return session


def needs_adult_confirmation(session: Session, theme: ThemeId) -> bool:
    """True when ``theme`` is 18+ and this chat has not confirmed its age yet."""
    return THEMES[theme].adult and not session.adult_confirmed


def confirm_adult(session: Session) -> Session:
    """Record this chat's 18+ confirmation."""
    session.adult_confirmed = True
    return session


def choose_theme(session: Session, theme: ThemeId, library: Library) -> Session:
    """Pick a theme. A single level or content type is chosen at once.

    Raises ``PermissionError`` for an 18+ theme without confirmation.
    """
    if needs_adult_confirmation(session, theme):
        raise PermissionError("the 18+ theme needs a confirmation first")
    info = THEMES[theme]
    session.theme = theme
    levels = library.levels(theme)
    session.level = levels[0] if len(levels) == 1 else None
    session.content = info.contents[0] if len(info.contents) == 1 else None
    return session


def choose_level(session: Session, level: int, library: Library) -> Session:
    """Pick a level of the current theme; ``ValueError`` when it has no such level."""
    if session.theme is None or level not in library.levels(session.theme):
        raise ValueError(f"level {level} is not available here")
    info = THEMES[session.theme]
    session.level = level
    session.content = info.contents[0] if len(info.contents) == 1 else None
    return session


def choose_content(session: Session, content: ContentType) -> Session:
    """Pick questions or tasks; ``ValueError`` when the theme has no such content."""
    if session.theme is None or content not in THEMES[session.theme].contents:
        raise ValueError(f"content {content} is not available here")
    if session.level is None:
        raise ValueError("choose a level first")
    session.content = content
    return session


def go_back(session: Session, library: Library) -> Session:
    """One meaningful step back: deck → content → level → theme (skipping single choices)."""
    here = step(session, library)
    if session.theme is None:
        return session
    info = THEMES[session.theme]
    if here == "deck" and len(info.contents) > 1:
        session.content = None
    elif here in {"deck", "content"} and len(library.levels(session.theme)) > 1:
        session.level = None
        session.content = None
    else:
        session.theme = None
        session.level = None
        session.content = None
    return session


def reset(session: Session) -> Session:
    """Forget the game (theme, level, drawn cards); keep language and 18+ confirmation."""
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


def reshuffle(session: Session, theme: ThemeId, level: int, content: ContentType) -> Session:
    """Put every card of one deck back."""
    drawn = dict(session.drawn)
    drawn.pop(deck_key(theme, level, content), None)
    session.drawn = drawn
    # The deck's last card was seen: it must not come first in the new round.
    session.last_card = None
    return session
