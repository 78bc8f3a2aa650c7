"""Vechnost: a Telegram conversation card game whose Redis storage runs itself."""

from vechnost_bot.errors import VechnostError

__all__ = ["VechnostError", "__version__"]

__version__ = "0.1.0"
