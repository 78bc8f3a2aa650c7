"""The game: themes, decks of cards, the rules of drawing, and card images."""

from vechnost_bot.errors import ContentError
from vechnost_bot.game.content import (
    DATA_DIR,
    LANGUAGES,
    THEMES,
    Card,
    Deck,
    Library,
    Theme,
    deck_key,
    load_library,
)
from vechnost_bot.game.engine import DrawOutcome, Step, draw, progress, step
from vechnost_bot.game.render import fits, render_card, render_card_async

__all__ = [
    "DATA_DIR",
    "LANGUAGES",
    "THEMES",
    "Card",
    "ContentError",
    "Deck",
    "DrawOutcome",
    "Library",
    "Step",
    "Theme",
    "deck_key",
    "draw",
    "fits",
    "load_library",
    "progress",
    "render_card",
    "render_card_async",
    "step",
]
