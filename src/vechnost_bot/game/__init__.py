"""The game: themes, decks of cards, the rules of drawing, and card images."""

from vechnost_bot.errors import ContentError
from vechnost_bot.game.content import (
    CARD_ID,
    DATA_DIR,
    LANGUAGES,
    THEMES,
    Card,
    CardKind,
    Deck,
    Library,
    Theme,
    deck_key,
    load_library,
)
from vechnost_bot.game.engine import DrawOutcome, Step, draw, progress, step
from vechnost_bot.game.labels import heat_label, kind_label
from vechnost_bot.game.render import fits, render_card, render_card_async
from vechnost_bot.game.typography import bind_short_words

__all__ = [
    "CARD_ID",
    "DATA_DIR",
    "LANGUAGES",
    "THEMES",
    "Card",
    "CardKind",
    "ContentError",
    "Deck",
    "DrawOutcome",
    "Library",
    "Step",
    "Theme",
    "bind_short_words",
    "deck_key",
    "draw",
    "fits",
    "heat_label",
    "kind_label",
    "load_library",
    "progress",
    "render_card",
    "render_card_async",
    "step",
]
