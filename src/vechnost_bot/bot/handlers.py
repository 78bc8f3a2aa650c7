"""Telegram handlers: commands, buttons, unexpected input, rate limit, errors.

Every piece of per-chat state is read from and written to the storage on each
update (``Session`` per chat, ``UserStats`` per player): a handler keeps nothing
between updates, so a restart or a failover loses nothing and several bot processes
could serve one chat. Only the per-user rate limit lives in the process, so that a
flood costs no storage call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.constants import ChatType, MessageEntityType
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from vechnost_bot.bot import keyboards
from vechnost_bot.bot.callbacks import Callback, parse
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.delivery import delivery_failed
from vechnost_bot.bot.ratelimit import KeyedBuckets
from vechnost_bot.bot.texts import (
    COMMANDS,
    DEFAULT_LANGUAGE,
    language_from_code,
    t,
)
from vechnost_bot.game import engine
from vechnost_bot.game.content import LANGUAGES, Library, deck_key
from vechnost_bot.metrics import ERRORS, UPDATES_HANDLED, UPDATES_RATE_LIMITED
from vechnost_bot.storage.base import Storage
from vechnost_bot.storage.records import Language, Session, UserStats

__all__ = ["MAX_TEXT_LENGTH", "GameBot", "set_commands"]

log = structlog.get_logger(__name__)

MAX_TEXT_LENGTH = 1000
"""Text longer than this gets the "long message" answer."""

Context = ContextTypes.DEFAULT_TYPE


async def set_commands(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Register /start /help /language /reset in every language (and a default)."""
    bot = application.bot
    for language in (None, *LANGUAGES):
        commands = [BotCommand(name, t(language, f"cmd_{name}")) for name in COMMANDS]
        await bot.set_my_commands(commands, language_code=language)


@dataclass
class GameBot:
    """The handlers, with what they need. :meth:`install` adds them to an Application."""

    storage: Storage
    library: Library
    cards: CardSender
    rate_limit_updates: int = 20
    rate_limit_window: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    updates_handled: int = 0
    limiter: KeyedBuckets[int] = field(init=False)
    quiet_answers: KeyedBuckets[int] = field(init=False)

    def __post_init__(self) -> None:
        rate = self.rate_limit_updates / self.rate_limit_window
        self.limiter = KeyedBuckets(self.rate_limit_updates, rate)
        self.quiet_answers = KeyedBuckets(self.rate_limit_updates, rate)

    def install(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Add every handler; the rate limit runs first, in group -1."""
        application.add_handler(TypeHandler(Update, self._gate), group=-1)
        application.add_handler(CommandHandler("start", self.on_start))
        application.add_handler(CommandHandler("help", self.on_help))
        application.add_handler(CommandHandler("reset", self.on_reset))
        application.add_handler(CommandHandler("language", self.on_language))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL, self.on_other)
        )
        application.add_error_handler(self.on_error)

    # -- helpers ------------------------------------------------------------------------
    async def _session(self, chat_id: int, user: User | None) -> Session:
        """The chat's session; on first contact its language comes from Telegram."""
        session = await self.storage.get_session(chat_id)
        if session is not None and session.language is not None:
            return session
        language = language_from_code(user.language_code if user else None)

        def set_language(current: Session) -> Session:
            if current.language is None:
                current.language = language
            return current

        return await self.storage.update_session(chat_id, set_language)

    async def _touch_user(
        self, user: User | None, *, started: bool = False, drew: bool = False
    ) -> None:
        if user is None:
            return
        now = self.clock()

        def mutate(stats: UserStats) -> UserStats:
            stats.first_seen = stats.first_seen or now
            stats.last_seen = now
            stats.games_started += int(started)
            stats.cards_drawn += int(drew)
            return stats

        await self.storage.update_user_stats(user.id, mutate)

    async def _show(
        self,
        update: Update,
        text: str,
        markup: InlineKeyboardMarkup | None,
        *,
        edit: bool,
    ) -> None:
        """Show a menu: edit the button's message when it is a text message, else send."""
        chat = update.effective_chat
        if chat is None:
            return
        query = update.callback_query
        message = query.message if query is not None else None
        if edit and isinstance(message, Message) and message.text is not None:
            try:
                await message.edit_text(text, reply_markup=markup)
            except BadRequest as error:
                if "not modified" in str(error).lower():
                    return
                # Too old, deleted, or otherwise not editable: say it in a new message.
                log.info("menu_edit_failed", chat_id=chat.id, error=str(error))
            else:
                return
        await chat.send_message(text, reply_markup=markup)

    async def _show_menu(
        self, update: Update, session: Session, *, prefix: str | None = None, edit: bool = True
    ) -> None:
        text, markup = keyboards.menu_for(session, self.library)
        await self._show(update, f"{prefix}\n\n{text}" if prefix else text, markup, edit=edit)

    # -- rate limit -----------------------------------------------------------------------
    async def _gate(self, update: Update, context: Context) -> None:
        """Count the update; a flooding user gets one "slow down", then silence.

        The limit is a token bucket in the process (:mod:`vechnost_bot.bot.ratelimit`):
        a refused update costs no storage call. A refused button press is answered
        silently (its spinner stops) while a second bucket of the same size allows; past
        that, a flood gets no Bot API call at all, except the one notice per window.
        """
        kind = "callback" if update.callback_query else "message" if update.message else "other"
        UPDATES_HANDLED.labels(kind=kind).inc()
        self.updates_handled += 1
        user = update.effective_user
        if user is None:
            return
        if self.limiter.take(user.id):
            return
        UPDATES_RATE_LIMITED.inc()
        query = update.callback_query
        if not self.limiter.notice_due(user.id):
            if query is not None and self.quiet_answers.take(user.id):
                await _answer(query)
            raise ApplicationHandlerStop
        log.info("rate_limited", user_id=user.id, window=self.limiter.window)
        chat = update.effective_chat
        session = await self.storage.get_session(chat.id) if chat else None
        language = (session.language if session else None) or language_from_code(user.language_code)
        if query is not None:
            await _answer(query, t(language, "slow_down"))
        elif chat is not None:
            await chat.send_message(t(language, "slow_down"))
        raise ApplicationHandlerStop

    # -- commands -------------------------------------------------------------------------
    async def on_start(self, update: Update, context: Context) -> None:
        """Welcome; the themes menu, or where the chat left off."""
        chat = update.effective_chat
        if chat is None:
            return
        user = update.effective_user
        session = await self._session(chat.id, user)
        await self._touch_user(user, started=True)
        name = user.first_name if user else ""
        if engine.step(session, self.library) == "theme":
            text = t(session.language, "welcome", name=name)
            await self._show(update, text, keyboards.themes_keyboard(session.language or "en"),
                             edit=False)  # fmt: skip
        else:
            await self._show_menu(
                update, session, prefix=t(session.language, "welcome_back", name=name), edit=False
            )
        log.info("game_started", chat_id=chat.id, language=session.language)

    async def on_help(self, update: Update, context: Context) -> None:
        """How to play, with the current menu under it."""
        chat = update.effective_chat
        if chat is None:
            return
        session = await self._session(chat.id, update.effective_user)
        _text, markup = keyboards.menu_for(session, self.library)
        await self._show(update, t(session.language, "help"), markup, edit=False)

    async def on_reset(self, update: Update, context: Context) -> None:
        """Forget the game (not the language, not the 18+ confirmation)."""
        chat = update.effective_chat
        if chat is None:
            return
        await self._session(chat.id, update.effective_user)
        session = await self.storage.update_session(chat.id, engine.reset)
        log.info("game_reset", chat_id=chat.id)
        await self._show_menu(update, session, prefix=t(session.language, "reset_done"), edit=False)

    async def on_language(self, update: Update, context: Context) -> None:
        """The language menu."""
        chat = update.effective_chat
        if chat is None:
            return
        session = await self._session(chat.id, update.effective_user)
        await self._show(
            update,
            t(session.language, "choose_language"),
            keyboards.language_keyboard(back=session.language or DEFAULT_LANGUAGE),
            edit=False,
        )

    async def on_other(self, update: Update, context: Context) -> None:
        """Anything else: unknown commands, free text, stickers, photos … a kind word + menu."""
        chat = update.effective_chat
        message = update.message
        if chat is None or message is None:
            return
        if chat.type != ChatType.PRIVATE and message.text is None:
            return  # in a group, pictures and stickers are for the people, not for us
        command = _command(message)
        if command is not None and "@" in command:
            addressee = command.partition("@")[2].lower()
            if addressee != (context.bot.username or "").lower():
                return  # a command for another bot in the group
        session = await self._session(chat.id, update.effective_user)
        if message.text is None:
            key = "unexpected_media"
        elif len(message.text) > MAX_TEXT_LENGTH:
            key = "too_long"
        elif command is not None:
            key = "unknown_command"
        else:
            key = "unknown_input"
        log.info("unexpected_input", chat_id=chat.id, kind=key)
        await self._show_menu(update, session, prefix=t(session.language, key), edit=False)

    # -- buttons --------------------------------------------------------------------------
    async def on_button(self, update: Update, context: Context) -> None:
        """Every inline button; unknown or stale ones get the current menu."""
        query = update.callback_query
        chat = update.effective_chat
        if query is None:
            return
        if chat is None:
            # A button under an inline message: there is no chat to play in; stop its spinner.
            log.info("callback_inline_ignored", user_id=query.from_user.id)
            await _answer(query)
            return
        callback = parse(query.data)
        # A draw is one storage call (the check of where the chat is runs inside it):
        # only when it does not fit, the session is read for the menus below.
        if (
            callback is not None
            and callback.action in {"next", "reshuffle"}
            and await self._on_draw(update, query, chat.id, callback)
        ):
            return
        session = await self._session(chat.id, update.effective_user)
        if callback is None:
            log.info("callback_rejected", chat_id=chat.id, data_length=len(query.data or ""))
            await self._stale(update, query, session)
            return
        handled = await self._dispatch(update, query, session, callback)
        if not handled:
            log.info("callback_stale", chat_id=chat.id, action=callback.action)
            await self._stale(update, query, session)

    async def _stale(self, update: Update, query: CallbackQuery, session: Session) -> None:
        await _answer(query)
        await self._show_menu(update, session, prefix=t(session.language, "stale"), edit=False)

    async def _dispatch(
        self, update: Update, query: CallbackQuery, session: Session, callback: Callback
    ) -> bool:
        chat_id = session.chat_id
        language = session.language or DEFAULT_LANGUAGE
        action = callback.action
        if action == "language" and callback.language:
            chosen = callback.language
            session = await self.storage.update_session(
                chat_id, lambda s: engine.choose_language(s, chosen)
            )
            await _answer(query)
            await self._show_menu(update, session, prefix=t(chosen, "language_set"))
            return True
        if action == "language_menu":
            await _answer(query)
            await self._show(update, t(language, "choose_language"),
                             keyboards.language_keyboard(back=language), edit=True)  # fmt: skip
            return True
        if action == "current":
            await _answer(query)
            await self._show_menu(update, session)
            return True
        if action == "help":
            await _answer(query)
            _text, markup = keyboards.menu_for(session, self.library)
            await self._show(update, t(language, "help"), markup, edit=False)
            return True
        if action == "menu":
            session = await self.storage.update_session(chat_id, _to_themes)
            await _answer(query)
            await self._show_menu(update, session)
            return True
        if action == "theme" and callback.theme:
            theme = callback.theme
            if engine.needs_adult_confirmation(session, theme):
                await _answer(query)
                await self._show(update, t(language, "adult_prompt"),
                                 keyboards.adult_keyboard(language), edit=True)  # fmt: skip
                return True
            session = await self.storage.update_session(
                chat_id, lambda s: engine.choose_theme(s, theme, self.library)
            )
            await _answer(query)
            await self._show_menu(update, session)
            return True
        if action == "adult":
            return await self._on_adult(update, query, chat_id, language, yes=bool(callback.yes))
        if action == "back":
            return await self._on_back(update, query, session, callback)
        if action == "level" and callback.level is not None:
            if session.theme is None or session.theme != callback.theme:
                return False
            if callback.level not in self.library.levels(session.theme):
                return False
            level = callback.level
            session = await self.storage.update_session(
                chat_id, lambda s: engine.choose_level(s, level, self.library)
            )
            await _answer(query)
            await self._show_menu(update, session)
            return True
        if action == "content" and callback.content is not None:
            if (session.theme, session.level) != (callback.theme, callback.level):
                return False
            content = callback.content
            session = await self.storage.update_session(
                chat_id, lambda s: engine.choose_content(s, content)
            )
            await _answer(query)
            await self._show_menu(update, session)
            return True
        return False

    async def _on_adult(
        self, update: Update, query: CallbackQuery, chat_id: int, language: Language, *, yes: bool
    ) -> bool:
        if not yes:
            session = await self.storage.update_session(chat_id, _to_themes)
            await _answer(query)
            await self._show_menu(update, session, prefix=t(language, "adult_declined"))
            return True

        def confirm(current: Session) -> Session:
            return engine.choose_theme(engine.confirm_adult(current), "sex", self.library)

        session = await self.storage.update_session(chat_id, confirm)
        log.info("adult_confirmed", chat_id=chat_id)
        await _answer(query)
        await self._show_menu(update, session)
        return True

    async def _on_back(
        self, update: Update, query: CallbackQuery, session: Session, callback: Callback
    ) -> bool:
        theme, level = callback.theme, callback.level
        if theme is None:
            mutate: Callable[[Session], Session] = _to_themes
        elif session.theme != theme or (level is not None and session.level != level):
            return False
        elif level is None:

            def mutate(current: Session) -> Session:
                current.level = None
                current.content = None
                return current

        else:

            def mutate(current: Session) -> Session:
                current.content = None
                return current

        session = await self.storage.update_session(session.chat_id, mutate)
        await _answer(query)
        await self._show_menu(update, session)
        return True

    async def _on_draw(
        self, update: Update, query: CallbackQuery, chat_id: int, callback: Callback
    ) -> bool:
        """Draw (or reshuffle and draw) in one storage call; False when the button does
        not match where the chat is (the caller shows the current menu)."""
        reshuffle = callback.action == "reshuffle"
        outcome: list[engine.DrawOutcome] = []
        wanted = (callback.theme, callback.level, callback.content)

        def mutate(current: Session) -> Session | None:
            outcome.clear()
            here = (current.theme, current.level, current.content)
            if (
                current.language is None
                or engine.step(current, self.library) != "deck"
                or here != wanted
            ):
                return None
            if reshuffle and current.theme and current.level and current.content:
                current = engine.reshuffle(current, current.theme, current.level, current.content)
            current, result = engine.draw(current, self.library, self.rng)
            outcome.append(result)
            return current

        session = await self.storage.update_session(chat_id, mutate)
        if not outcome:
            return False
        result = outcome[0]
        language = session.language or DEFAULT_LANGUAGE
        theme, level, content = session.theme, session.level, session.content
        if theme is None or level is None or content is None:
            return False
        levels = self.library.levels(theme)
        if result.card is None:
            await _answer(query)
            log.info("deck_exhausted", chat_id=chat_id, deck=f"{theme}:{level}:{content}")
            await self._show(
                update,
                t(language, "exhausted", total=result.total),
                keyboards.exhausted_keyboard(language, theme, level, content, levels=levels),
                edit=False,
            )
            return True
        title = keyboards.deck_title(language, theme, level, content, levels=levels)
        caption = t(language, "card_caption", deck=title, drawn=result.drawn, total=result.total)
        card = result.card
        if result.drawn >= result.total:
            # The deck's last card: offer the reshuffle (and the themes) with it, not a
            # "Next card" that could only say the deck is done.
            markup = keyboards.exhausted_keyboard(language, theme, level, content, levels=levels)
        else:
            markup = keyboards.deck_keyboard(language, theme, level, content, levels=levels)
        # The answer only stops the button's spinner: send it alongside the card.
        answered, sent = await asyncio.gather(
            _answer(query, t(language, "reshuffled") if reshuffle else None),
            self.cards.send(
                query.get_bot(),
                chat_id,
                card,
                language,
                caption=caption,
                footer=title,
                reply_markup=markup,
            ),
            return_exceptions=True,
        )
        if isinstance(sent, BaseException):
            if not delivery_failed(sent):
                # Sent, but the reply was lost: the player very likely saw the card, so it
                # stays drawn, with no apology and no repeat (docs/game.md, Sending cards).
                log.warning("card_send_uncertain", chat_id=chat_id, card=card.id,
                            error=type(sent).__name__)  # fmt: skip
            else:
                # Never seen, so not drawn: put it back, and the next "Next card" sends it.
                log.warning("card_send_failed", chat_id=chat_id, card=card.id, error=repr(sent))
                deck = deck_key(theme, level, content)
                await self.storage.update_session(
                    chat_id, lambda s: engine.undraw(s, deck, card.id)
                )
                raise sent
        if isinstance(answered, BaseException):
            log.warning("callback_answer_failed", chat_id=chat_id, error=repr(answered))
        await self._touch_user(update.effective_user, drew=True)
        log.debug("card_drawn", chat_id=chat_id, card=result.card.id, drawn=result.drawn)
        return True

    # -- errors ---------------------------------------------------------------------------
    async def on_error(self, update: object, context: Context) -> None:
        """Log the error and, when there is a chat, answer kindly with the current menu."""
        ERRORS.labels(where="handler").inc()
        error = context.error
        if error is not None and not delivery_failed(error):
            # A reply that may have been shown: an apology on top would only confuse.
            log.warning("reply_uncertain", error=type(error).__name__)
            return
        log.error("handler_failed", error=repr(error), exc_info=error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        chat = update.effective_chat
        try:
            if update.callback_query is not None:
                await update.callback_query.answer()
        except TelegramError:
            log.debug("error_answer_failed")
        try:
            session = await self.storage.get_session(chat.id) or Session(
                chat_id=chat.id, language=DEFAULT_LANGUAGE
            )
            text, markup = keyboards.menu_for(session, self.library)
            await chat.send_message(
                f"{t(session.language, 'error')}\n\n{text}", reply_markup=markup
            )
        except Exception as error:  # noqa: BLE001 - the error handler must never raise
            log.warning("error_reply_failed", error=repr(error))


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press; a query Telegram no longer accepts is not an error for us."""
    try:
        await query.answer(text)
    except BadRequest as error:
        # "query is too old": the press waited too long (e.g. while the bot was down).
        log.info("callback_answer_failed", error=str(error))


def _command(message: Message) -> str | None:
    """The ``/command`` (with any ``@botname``) a message starts with, or None."""
    for entity in message.entities:
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return (message.text or "")[: entity.length]
    return None


def _to_themes(session: Session) -> Session:
    session.theme = None
    session.level = None
    session.content = None
    return session
