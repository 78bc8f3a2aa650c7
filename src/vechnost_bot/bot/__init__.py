"""The Telegram side: texts, keyboards, callback data, handlers, card photos."""

from vechnost_bot.bot.callbacks import Callback, encode, parse
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.handlers import GameBot, set_commands

__all__ = ["Callback", "CardSender", "GameBot", "encode", "parse", "set_commands"]
