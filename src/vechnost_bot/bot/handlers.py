"""Telegram handlers: commands, buttons, unexpected input, rate limit, errors.

Every piece of state is read from and written to the storage on each update: the
game's decks (``Session``), its table (who plays, whose turn, pacing, history, a
room's members), the people (``Player``: language, 18+, favourites), a private
chat's link to a room, ``UserStats``. A handler keeps
nothing between updates, so a restart or a failover loses nothing and several bot
processes could serve one chat. The rules are in ``game/engine.py``; this module
reads, dispatches, writes and talks to Telegram.
Only the per-user rate limit lives in the process, so that a flood costs no storage
call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from telegram import (
    Bot,
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
from vechnost_bot.bot.cards import CardSender, caption_text
from vechnost_bot.bot.delivery import SendGuard, delivery_failed
from vechnost_bot.bot.keyboards import CardButtons, Place
from vechnost_bot.bot.ratelimit import KeyedBuckets, SharedLimit
from vechnost_bot.bot.texts import (
    CHOOSE_LANGUAGE_ANY,
    COMMANDS,
    DEFAULT_LANGUAGE,
    MENU_LANGUAGES,
    count_cards,
    language_from_code,
    t,
    theme_name,
)
from vechnost_bot.game import engine
from vechnost_bot.game.content import LANGUAGES, THEMES, Card, Library, deck_key
from vechnost_bot.metrics import ERRORS, UPDATES_HANDLED, UPDATES_RATE_LIMITED
from vechnost_bot.storage.base import Change, Storage
from vechnost_bot.storage.game_records import (
    ROOM_GAME_BASE,
    ChatLink,
    Player,
    Seat,
    Table,
    room_game_id,
)
from vechnost_bot.storage.records import (
    ContentType,
    Language,
    Record,
    Session,
    ThemeId,
    UserStats,
)

__all__ = ["MAX_TEXT_LENGTH", "GameBot", "set_commands"]

log = structlog.get_logger(__name__)

MAX_TEXT_LENGTH = 1000
"""Text longer than this gets the "long message" answer."""

ROOM_PREFIX = "room_"
"""Deep-link payload of a room invite: ``/start room_<number>``."""

Context = ContextTypes.DEFAULT_TYPE
R = TypeVar("R", bound=Record)

UNLINKED_CHATS = 100_000
"""Private chats known to play no room, kept in the process (a sole writer's negative
hint), so that their update reads no absent ChatLink."""

# The longest the apology after a failed update waits for a chat's 429 window to end;
# past it, the player's next tap brings the menu back anyway.
_APOLOGY_MAX_WAIT = 30.0


async def set_commands(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Register the command menu in every language (and for uk, be, kk, sk clients in the
    language the bot speaks to them), and the bot's description and short description."""
    bot = application.bot
    menus: list[tuple[str | None, Language | None]] = [(None, None)]
    menus += [(language, language) for language in LANGUAGES]
    menus += list(MENU_LANGUAGES.items())
    for code, language in menus:
        commands = [BotCommand(name, t(language, f"cmd_{name}")) for name in COMMANDS]
        await bot.set_my_commands(commands, language_code=code)
    for code, language in [(None, None), *[(lang, lang) for lang in LANGUAGES]]:
        await bot.set_my_description(t(language, "description"), language_code=code)
        await bot.set_my_short_description(t(language, "short_description"), language_code=code)


@dataclass
class Here:
    """Who an update comes from, where, and the game that chat plays."""

    chat_id: int
    place: Place
    user: User | None
    language: Language | None  # None: the player has to choose first
    game_id: int  # the key of the game's Session and Table: the chat's id or a room's
    session: Session
    table: Table

    @property
    def lang(self) -> Language:
        """The player's language, English until they chose."""
        return self.language or DEFAULT_LANGUAGE

    @property
    def user_id(self) -> int | None:
        """The Telegram user, when the update names one."""
        return self.user.id if self.user else None


@dataclass(frozen=True, slots=True)
class _Viewer:
    """One chat a card goes to, and the person reading it there."""

    chat_id: int
    language: Language
    user_id: int | None


@dataclass
class GameBot:
    """The handlers, with what they need. :meth:`install` adds them to an Application."""

    storage: Storage
    library: Library
    cards: CardSender
    rate_limit_updates: int = 20
    rate_limit_window: float = 10.0
    pace_cards: int = engine.DEFAULT_PACE
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    updates_handled: int = 0
    bot: Bot | None = None  # the Application's bot, set by install()
    shared_limit: SharedLimit | None = None
    """Replicas: the per-user window shared through the storage, behind ``limiter``."""
    # This process is the only one handling this bot's updates (polling: Telegram hands
    # getUpdates to one consumer), so what the storage saw last of a record is its
    # current state, and handlers read through that hint. Webhook replicas sharing one
    # Redis set it False: every read an answer is made from then goes to the storage.
    sole_writer: bool = True
    limiter: KeyedBuckets[int] = field(init=False)
    quiet_answers: KeyedBuckets[int] = field(init=False)
    _unlinked: OrderedDict[int, None] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        rate = self.rate_limit_updates / self.rate_limit_window
        self.limiter = KeyedBuckets(self.rate_limit_updates, rate)
        self.quiet_answers = KeyedBuckets(self.rate_limit_updates, rate)

    def install(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """Add every handler; the rate limit runs first, in group -1."""
        self.bot = application.bot
        application.add_handler(TypeHandler(Update, self._gate), group=-1)
        application.add_handler(CommandHandler("start", self.on_start))
        application.add_handler(CommandHandler("help", self.on_help))
        application.add_handler(CommandHandler("reset", self.on_reset))
        application.add_handler(CommandHandler("language", self.on_language))
        application.add_handler(CommandHandler("favourites", self.on_favourites))
        application.add_handler(CommandHandler("room", self.on_room))
        application.add_handler(CommandHandler("leave", self.on_leave))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL, self.on_other)
        )
        application.add_error_handler(self.on_error)

    # -- records --------------------------------------------------------------------------
    async def _read(self, model: type[R], key: str) -> R | None:
        """A record as the answer needs it: through the storage's hint for a sole writer,
        else fresh from the storage."""
        if self.sole_writer:
            return await self.storage.recent_record(model, key)
        return await self.storage.get_record(model, key)

    async def _chat_link(self, chat_id: int) -> ChatLink | None:
        if self.sole_writer and chat_id in self._unlinked:
            self._unlinked.move_to_end(chat_id)
            return None
        link = await self._read(ChatLink, str(chat_id))
        if link is None and self.sole_writer:
            self._unlinked[chat_id] = None
            if len(self._unlinked) > UNLINKED_CHATS:
                self._unlinked.popitem(last=False)
        return link

    async def _update_table(self, game_id: int, mutate: Callable[[Table], Table | None]) -> Table:
        return await self.storage.update_record(
            Table, str(game_id), lambda: Table(game_id=game_id), mutate
        )

    async def _update_player(
        self, user_id: int, mutate: Callable[[Player], Player | None]
    ) -> Player:
        return await self.storage.update_record(
            Player, str(user_id), lambda: Player(user_id=user_id), mutate
        )

    async def _link(self, chat_id: int, room: int | None) -> None:
        def mutate(link: ChatLink) -> ChatLink:
            link.room = room
            return link

        self._unlinked.pop(chat_id, None)
        await self.storage.update_record(
            ChatLink, str(chat_id), lambda: ChatLink(chat_id=chat_id), mutate
        )

    async def _players(self, user_ids: Sequence[int | None]) -> dict[int, Player]:
        found: dict[int, Player] = {}
        for uid in {u for u in user_ids if u}:  # 0: a seat known by name only
            player = await self._read(Player, str(uid))
            if player is not None:
                found[uid] = player
        return found

    async def _language_of(self, user_id: int | None) -> Language:
        if user_id is None:
            return DEFAULT_LANGUAGE
        player = await self._read(Player, str(user_id))
        return (player.language if player else None) or DEFAULT_LANGUAGE

    async def _here(self, update: Update) -> Here | None:
        """Read who, where and which game; on first contact the language comes from
        Telegram (a Ukrainian client is asked instead)."""
        chat = update.effective_chat
        if chat is None:
            return None
        user = update.effective_user
        private = chat.type == ChatType.PRIVATE
        place: Place = "private" if private else "group"
        game_id = chat.id
        place_of_chat = place
        # One after another: a sole writer usually reads them all from its hints, and a
        # cold update then holds one Redis connection, not four (64 updates at once would
        # exhaust the client's pool of 100).
        link = await self._chat_link(chat.id) if private else None
        session = await self._read(Session, str(chat.id))
        table = await self._read(Table, str(chat.id))
        language = await self._person_language(user, chat.id if private else None)
        if link is not None and link.room is not None:
            room_session = await self._read(Session, str(link.room))
            room_table = await self._read(Table, str(link.room))
            present = (
                room_table is not None and user is not None and (str(user.id) in room_table.members)
            )
            if room_table is not None and present:
                game_id, session, table, place = link.room, room_session, room_table, "room"
        if place == place_of_chat:
            game_id = chat.id
        session = session or Session(chat_id=game_id)
        table = table or Table(game_id=game_id)
        return Here(chat.id, place, user, language, game_id, session, table)

    async def _person_language(
        self, user: User | None, private_chat: int | None
    ) -> Language | None:
        if user is None:
            return DEFAULT_LANGUAGE
        player = await self._read(Player, str(user.id))
        if player is not None and player.language is not None:
            return player.language
        # A chat that played before players had their own records kept its language here.
        legacy = await self._read(Session, str(private_chat)) if private_chat else None
        language = (legacy.language if legacy else None) or language_from_code(user.language_code)
        if language is not None:
            await self._update_player(user.id, lambda p: engine.choose_language(p, language))
        return language

    async def _count_start(self, update: Update, here: Here) -> None:
        """A game started, counted in the player's stats once however often Telegram sends
        the /start (the count and the noted update id go in one write)."""
        change = self._stats_change(here.user, started=True)
        if change is not None and not engine.is_noted(here.session, update.update_id):
            await self._store(here, [change, self._noted(here.game_id, update.update_id)])

    def _stats_change(
        self, user: User | None, *, started: bool = False, drew: bool = False
    ) -> Change[UserStats] | None:
        """The player's stats, seen now (and a game started or a card drawn)."""
        if user is None:
            return None
        now, user_id = self.clock(), user.id

        def mutate(stats: UserStats) -> UserStats:
            stats.first_seen = stats.first_seen or now
            stats.last_seen = now
            stats.games_started += int(started)
            stats.cards_drawn += int(drew)
            return stats

        return Change(UserStats, str(user_id), lambda: UserStats(user_id=user_id), mutate)

    # -- showing things ---------------------------------------------------------------------
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

    def _menu(self, here: Here) -> tuple[str, InlineKeyboardMarkup]:
        return keyboards.menu_for(
            here.session, self.library, here.lang, place=here.place, table=here.table
        )

    async def _show_menu(
        self, update: Update, here: Here, *, prefix: str | None = None, edit: bool = True
    ) -> None:
        text, markup = self._menu(here)
        await self._show(update, f"{prefix}\n\n{text}" if prefix else text, markup, edit=edit)

    async def _ask_language(self, update: Update) -> None:
        await self._show(update, CHOOSE_LANGUAGE_ANY, keyboards.language_keyboard(), edit=False)

    # -- rate limit -----------------------------------------------------------------------
    async def _gate(self, update: Update, context: Context) -> None:
        """Count the update; a flooding user gets one "slow down", then silence.

        The limit is a token bucket in the process (:mod:`vechnost_bot.bot.ratelimit`):
        a refused update costs no storage call. With ``shared_limit`` (replicas) what the
        bucket allows is also counted in the window the replicas share. A refused button
        press is answered silently (its spinner stops) while a second bucket of the same
        size allows; past that, a flood gets no Bot API call at all, except the one notice
        per window.
        """
        kind = "callback" if update.callback_query else "message" if update.message else "other"
        UPDATES_HANDLED.labels(kind=kind).inc()
        self.updates_handled += 1
        user = update.effective_user
        if user is None:
            return
        if self.limiter.take(user.id) and (
            self.shared_limit is None or await self.shared_limit.allow(user.id, update.update_id)
        ):
            return
        UPDATES_RATE_LIMITED.inc()
        query = update.callback_query
        if not self.limiter.notice_due(user.id):
            if query is not None and self.quiet_answers.take(user.id):
                await _answer(query)
            raise ApplicationHandlerStop
        log.info("rate_limited", user_id=user.id, window=self.limiter.window)
        chat = update.effective_chat
        player = await self._read(Player, str(user.id))
        language = (player.language if player else None) or language_from_code(user.language_code)
        if query is not None:
            await _answer(query, t(language, "slow_down"))
        elif chat is not None:
            await chat.send_message(t(language, "slow_down"))
        raise ApplicationHandlerStop

    # -- commands -------------------------------------------------------------------------
    async def on_start(self, update: Update, context: Context) -> None:
        """Welcome; the themes menu, or where the game left off; a room invite joins."""
        payload = context.args[0] if context.args else ""
        if payload.startswith(ROOM_PREFIX):
            await self._join_room(update, payload.removeprefix(ROOM_PREFIX))
            return
        here = await self._here(update)
        if here is None:
            return
        await self._count_start(update, here)
        if here.language is None:
            await self._ask_language(update)
            return
        await self._welcome(update, here)
        log.info("game_started", chat_id=here.chat_id, language=here.language, place=here.place)

    async def _welcome(self, update: Update, here: Here) -> None:
        name = here.user.first_name if here.user else ""
        if engine.step(here.session, self.library) != "theme":
            await self._show_menu(
                update, here, prefix=t(here.lang, "welcome_back", name=name), edit=False
            )
            return
        text = t(here.lang, "welcome", name=name)
        table = here.table
        if here.place == "private" and not table.names_asked and not table.player_names:
            text = f"{text}\n\n{t(here.lang, 'ask_names')}"
            here.table = await self._update_table(here.game_id, _mark_names_asked)
        _menu_text, markup = self._menu(here)
        await self._show(update, text, markup, edit=False)

    async def on_help(self, update: Update, context: Context) -> None:
        """How to play, with the current menu under it."""
        here = await self._here(update)
        if here is None:
            return
        _text, markup = self._menu(here)
        await self._show(update, t(here.lang, "help"), markup, edit=False)

    async def on_reset(self, update: Update, context: Context) -> None:
        """Ask first: shuffle this deck, or forget the whole game."""
        here = await self._here(update)
        if here is None:
            return
        in_deck = engine.current_deck(here.session, self.library) is not None
        markup = keyboards.reset_keyboard(here.lang, in_deck=in_deck)
        await self._show(update, t(here.lang, "reset_confirm"), markup, edit=False)

    async def on_language(self, update: Update, context: Context) -> None:
        """The language menu."""
        here = await self._here(update)
        if here is None:
            return
        await self._show(
            update,
            t(here.lang, "choose_language"),
            keyboards.language_keyboard(back=here.lang),
            edit=False,
        )

    async def on_favourites(self, update: Update, context: Context) -> None:
        """Play the cards this person saved, one by one."""
        here = await self._here(update)
        if here is None:
            return
        await self._send_favourite(update, here, 1)

    async def on_room(self, update: Update, context: Context) -> None:
        """Make a room and give its invite link."""
        here = await self._here(update)
        if here is None:
            return
        await self._make_room(update, here)

    async def on_leave(self, update: Update, context: Context) -> None:
        """Leave the room this private chat plays in."""
        here = await self._here(update)
        if here is None:
            return
        await self._leave_room(update, here)

    async def on_other(self, update: Update, context: Context) -> None:
        """Anything else: two names, unknown commands, free text, media … a kind word + menu."""
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
        here = await self._here(update)
        if here is None:
            return
        if here.language is None:
            await self._ask_language(update)
            return
        names = engine.parse_names(message.text or "") if command is None else None
        if names is not None and here.place == "private":
            here.table = await self._update_table(
                here.game_id, lambda table: engine.set_names(table, names)
            )
            log.info("names_set", chat_id=here.chat_id)
            prefix = t(here.lang, "names_set", first=names[0], second=names[1])
            await self._show_menu(update, here, prefix=prefix, edit=False)
            return
        if message.text is None:
            key = "unexpected_media"
        elif len(message.text) > MAX_TEXT_LENGTH:
            key = "too_long"
        elif command is not None:
            key = "unknown_command"
        else:
            key = "unknown_input"
        log.info("unexpected_input", chat_id=chat.id, kind=key)
        await self._show_menu(update, here, prefix=t(here.lang, key), edit=False)

    # -- buttons --------------------------------------------------------------------------
    async def on_button(self, update: Update, context: Context) -> None:
        """Every inline button; unknown or stale ones get the current menu."""
        query = update.callback_query
        if query is not None and update.effective_chat is None:
            # A button under an inline message: there is no chat to play in; stop its spinner.
            log.info("callback_inline_ignored", user_id=query.from_user.id)
            await _answer(query)
            return
        here = await self._here(update)
        if query is None or here is None:
            return
        callback = parse(query.data)
        if callback is None:
            log.info("callback_rejected", chat_id=here.chat_id, data_length=len(query.data or ""))
            await self._stale(update, query, here)
            return
        if here.language is None and callback.action != "language":
            await _answer(query)
            await self._ask_language(update)
            return
        if engine.is_noted(here.session, update.update_id):
            await self._answer_again(update, query, here, callback)
            return
        handled = await self._dispatch(update, query, here, callback)
        if not handled:
            log.info("callback_stale", chat_id=here.chat_id, action=callback.action)
            await self._stale(update, query, here)

    async def _answer_again(
        self, update: Update, query: CallbackQuery, here: Here, callback: Callback
    ) -> None:
        """A tap whose effect the game's records already hold: Telegram sent it again
        because the replica that handled it died after its write, before its answer. It
        is answered as it was (the card on the table sent again), never applied twice."""
        log.info("update_redelivered", chat_id=here.chat_id, action=callback.action)
        action, language = callback.action, here.lang
        if action == "save" and callback.card:
            player = await self._read(Player, str(here.user_id)) if here.user else None
            saved = player is not None and callback.card in player.favourites
            await _answer(query, t(language, "saved" if saved else "unsaved"))
            return
        if action == "both":
            await _answer(query, t(language, "both_on" if here.table.both_answer else "both_off"))
            await self._show_menu(update, here)
            return
        await _answer(query)
        current = here.table.current
        card = self.library.card(current) if current else None
        if card is None:  # the game ended: its menu
            await self._show_menu(update, here, edit=False)
            return
        if here.session.recent_updates[-1] == update.update_id:
            # Not when a partner played since: the card on the table is theirs.
            await self._show_again(here, card, swapped=action == "swap")
            await self._drop_menu(query)

    async def _show_again(self, here: Here, card: Card, *, swapped: bool) -> None:
        """Send the card on the table again, as it was first shown."""
        if card.content is None:
            await self._deliver(here, card, kind="opening")
            return
        deck = engine.current_deck(here.session, self.library)
        if deck is None or deck.get(card.id) is None:
            return
        progress = engine.progress(here.session, deck)
        if swapped:
            roles = engine.roles(here.table, here.table.turn - 1)
            await self._deliver(here, card, roles=roles, progress=progress,
                                last=progress[0] >= progress[1])  # fmt: skip
            return
        await self._deliver_deck(here, card, engine.shown_deal(here.table, self.pace_cards),
                                 progress)  # fmt: skip

    async def _stale(self, update: Update, query: CallbackQuery, here: Here) -> None:
        await _answer(query)
        await self._show_menu(update, here, prefix=t(here.lang, "stale"), edit=False)

    async def _dispatch(
        self, update: Update, query: CallbackQuery, here: Here, callback: Callback
    ) -> bool:
        action = callback.action
        language = here.lang
        if action == "language" and callback.language:
            return await self._on_language(update, query, here, callback.language)
        if action == "language_menu":
            await _answer(query)
            await self._show(update, t(language, "choose_language"),
                             keyboards.language_keyboard(back=language), edit=True)  # fmt: skip
            return True
        if action == "current":
            await _answer(query)
            if _is_photo(query.message):
                # "Back to the game" under an earlier card: the card on the table is
                # right above with its buttons, so the look back just goes.
                await self._delete(query.message)
                return True
            await self._show_menu(update, here)
            return True
        if action == "help":
            await _answer(query)
            _text, markup = self._menu(here)
            await self._show(update, t(language, "help"), markup, edit=False)
            return True
        if action == "menu":
            here.session = await self.storage.update_session(here.game_id, _to_themes)
            await _answer(query)
            await self._show_menu(update, here)
            return True
        if action == "theme" and callback.theme:
            return await self._on_theme(update, query, here, callback)
        if action == "adult":
            return await self._on_adult(update, query, here, yes=bool(callback.yes))
        if action == "back":
            return await self._on_back(update, query, here, callback)
        if action == "level" and callback.level is not None:
            return await self._on_level(update, query, here, callback)
        if action == "content" and callback.content is not None:
            session = here.session
            if (session.theme, session.level) != (callback.theme, callback.level):
                return False
            if not await self._may_deal(query, here):
                return True
            content = callback.content
            here.session = await self.storage.update_session(
                here.game_id, lambda s: engine.choose_content(s, content)
            )
            return await self._deal(update, query, here)
        if action in {"next", "reshuffle"}:
            session = here.session
            deck = (session.theme, session.level, session.content)
            wanted = (callback.theme, callback.level, callback.content)
            if engine.step(session, self.library) != "deck" or deck != wanted:
                return False
            return await self._deal(update, query, here, reshuffle=action == "reshuffle")
        if action == "swap" and callback.card:
            return await self._on_swap(update, query, here, callback.card)
        if action == "save" and callback.card:
            return await self._on_save(update, query, here, callback.card)
        if action == "previous" and callback.number is not None:
            return await self._on_previous(update, query, here, callback.number)
        if action == "favourite" and callback.number is not None:
            await _answer(query)
            await self._send_favourite(update, here, callback.number)
            return True
        if action == "end":
            return await self._on_end(update, query, here)
        if action == "both":
            both = not here.table.both_answer
            game_id = here.game_id
            await self._store(here, [
                Change(Table, str(game_id), lambda: Table(game_id=game_id),
                       lambda table: _set_both(table, both=both)),
                self._noted(game_id, update.update_id),
            ])  # fmt: skip
            key = "both_on" if here.table.both_answer else "both_off"
            await _answer(query, t(language, key))
            await self._show_menu(update, here)
            return True
        if action in {"reset_deck", "reset_all"}:
            return await self._on_reset(update, query, here, whole=action == "reset_all")
        if action == "room":
            await _answer(query)
            await self._make_room(update, here)
            return True
        if action == "leave":
            await _answer(query)
            await self._leave_room(update, here)
            return True
        return False

    async def _on_language(
        self, update: Update, query: CallbackQuery, here: Here, chosen: Language
    ) -> bool:
        first_time = here.language is None
        if here.user is not None:
            await self._update_player(here.user.id, lambda p: engine.choose_language(p, chosen))
        here.language = chosen
        await _answer(query)
        if first_time:
            await self._welcome(update, here)
        else:
            await self._show_menu(update, here, prefix=t(chosen, "language_set"))
        return True

    def _seat_if_group(self, here: Here) -> Callable[[Table], Table] | None:
        if here.place != "group" or here.user is None:
            return None
        user_id, name = here.user.id, here.user.first_name
        return lambda table: engine.seat(table, user_id, name)

    async def _seat(self, here: Here) -> None:
        """A group member who plays takes a seat (while there is one)."""
        seat = self._seat_if_group(here)
        if seat is not None and here.user_id not in here.table.player_ids:
            here.table = await self._update_table(here.game_id, seat)

    async def _adult_ok(self, here: Here) -> bool:
        if here.place == "private" and here.session.adult_confirmed:
            return True  # confirmed on this phone before confirmations became per person
        players = await self._players([*here.table.player_ids, here.user_id])
        return engine.adult_ready(here.table, players, here.user_id)

    async def _may_deal(self, query: CallbackQuery, here: Here) -> bool:
        """A choice that deals a card is the next drawer's to make (seating a group member
        who takes part); anyone else gets a toast and nothing changes."""
        await self._seat(here)
        if engine.can_draw(here.table, here.user_id):
            return True
        drawer = engine.next_drawer(here.table)
        await _answer(query, t(here.lang, "not_your_turn", name=drawer.name if drawer else ""))
        return False

    async def _on_theme(
        self, update: Update, query: CallbackQuery, here: Here, callback: Callback
    ) -> bool:
        theme = callback.theme
        assert theme is not None
        deals = (
            len(engine.theme_levels(self.library, theme)) == 1 and len(THEMES[theme].contents) == 1
        )
        if deals and not await self._may_deal(query, here):
            return True
        await self._seat(here)
        adult_ok = await self._adult_ok(here)
        if engine.needs_adult_confirmation(theme, confirmed=adult_ok):
            await _answer(query)
            await self._adult_prompt(update, here, edit=True)
            return True
        here.session = await self.storage.update_session(
            here.game_id, lambda s: engine.choose_theme(s, self.library, theme, adult_ok=adult_ok)
        )
        if engine.step(here.session, self.library) == "deck":
            here.table = await self._update_table(here.game_id, engine.start_level)
            return await self._deal(update, query, here)
        await _answer(query)
        await self._show_menu(update, here)
        return True

    async def _adult_prompt(self, update: Update, here: Here, *, edit: bool) -> None:
        each = here.place != "private"
        key = "adult_prompt_each" if each else "adult_prompt"
        markup = keyboards.adult_keyboard(here.lang, each=each)
        await self._show(update, t(here.lang, key), markup, edit=edit)

    async def _on_adult(
        self, update: Update, query: CallbackQuery, here: Here, *, yes: bool
    ) -> bool:
        if not yes:
            here.session = await self.storage.update_session(here.game_id, _to_themes)
            await _answer(query)
            await self._show_menu(update, here, prefix=t(here.lang, "adult_declined"))
            return True
        if here.user is None:
            return False
        await self._update_player(here.user.id, engine.confirm_adult)
        log.info("adult_confirmed", chat_id=here.chat_id, place=here.place)
        await self._seat(here)
        adult_ok = await self._adult_ok(here)
        await _answer(query)
        if not adult_ok:
            await self._show(update, t(here.lang, "adult_waiting"),
                             keyboards.adult_keyboard(here.lang, each=True), edit=True)  # fmt: skip
            await self._prompt_partners(here)
            return True
        if here.session.theme == "sex":
            # An old prompt tapped once the theme is open: the game stays where it is.
            await self._show_menu(update, here)
            return True
        here.session = await self.storage.update_session(
            here.game_id, lambda s: engine.choose_theme(s, self.library, "sex", adult_ok=True)
        )
        await self._show_menu(update, here)
        if here.place == "room":
            for uid, chat_id in here.table.partners():
                if uid != here.user_id:
                    language = await self._language_of(uid)
                    text, markup = keyboards.menu_for(
                        here.session, self.library, language, place="room", table=here.table
                    )
                    await self._bot.send_message(chat_id, text, reply_markup=markup)
        return True

    async def _prompt_partners(self, here: Here) -> None:
        """In a room, the partner who has not confirmed 18+ gets the question on their phone."""
        if here.place != "room":
            return
        players = await self._players(here.table.player_ids)
        for uid, chat_id in here.table.partners():
            partner = players.get(uid)
            confirmed = partner is not None and partner.adult_confirmed
            if uid == here.user_id or confirmed:
                continue
            language = await self._language_of(uid)
            await self._bot.send_message(
                chat_id,
                t(language, "adult_prompt_each"),
                reply_markup=keyboards.adult_keyboard(language, each=True),
            )

    async def _on_back(
        self, update: Update, query: CallbackQuery, here: Here, callback: Callback
    ) -> bool:
        theme, level = callback.theme, callback.level
        session = here.session
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

        here.session = await self.storage.update_session(here.game_id, mutate)
        await _answer(query)
        await self._show_menu(update, here)
        return True

    async def _on_level(
        self, update: Update, query: CallbackQuery, here: Here, callback: Callback
    ) -> bool:
        level = callback.level
        assert level is not None
        if here.session.theme != callback.theme or here.session.theme is None:
            return False
        if level not in engine.theme_levels(self.library, here.session.theme):
            return False
        if not await self._may_deal(query, here):
            return True
        here.session = await self.storage.update_session(
            here.game_id, lambda s: engine.choose_level(s, self.library, level)
        )
        here.table = await self._update_table(here.game_id, engine.start_level)
        if engine.step(here.session, self.library) == "deck":
            return await self._deal(update, query, here)
        await _answer(query)
        await self._show_menu(update, here)
        return True

    async def _on_reset(
        self, update: Update, query: CallbackQuery, here: Here, *, whole: bool
    ) -> bool:
        if whole:
            here.session = await self.storage.update_session(here.game_id, engine.reset)
            here.table = await self._update_table(here.game_id, engine.reset_table)
            await self._clear_card_keyboards(here.table)
            log.info("game_reset", chat_id=here.chat_id, whole=True)
            await _answer(query)
            await self._show_menu(update, here, prefix=t(here.lang, "reset_done"))
            return True
        session = here.session
        info = self._deck_info(session)
        if engine.current_deck(session, self.library) is None or info is None:
            return False
        theme, level, content, _several = info
        here.session = await self.storage.update_session(
            here.game_id, lambda s: engine.reshuffle(s, theme, level, content)
        )
        log.info("game_reset", chat_id=here.chat_id, whole=False)
        await _answer(query)
        await self._show_menu(update, here, prefix=t(here.lang, "reset_deck_done"))
        return True

    # -- cards ------------------------------------------------------------------------------
    @property
    def _bot(self) -> Bot:
        if self.bot is None:
            raise RuntimeError("GameBot.install() was not called")
        return self.bot

    def _deck_info(self, session: Session) -> tuple[ThemeId, int, ContentType, bool] | None:
        theme, level, content = session.theme, session.level, session.content
        if theme is None or level is None or content is None:
            return None
        several = len(engine.theme_levels(self.library, theme)) > 1
        return theme, level, content, several

    async def _viewers(self, here: Here, reader: Seat | None) -> list[_Viewer]:
        """Where a card goes: each present partner of a room in their own language, else
        this chat, in the language of the player who reads the card aloud."""
        table = here.table
        if here.place == "room":
            return [
                _Viewer(chat_id, await self._language_of(uid), uid)
                for uid, chat_id in table.partners()
            ]
        language = here.lang
        if here.place == "group" and reader is not None and reader.user_id is not None:
            language = await self._language_of(reader.user_id)
        return [_Viewer(here.chat_id, language, here.user_id)]

    async def _other_languages(self, here: Here, shown: Language) -> list[Language]:
        """A group's other players' languages: their text goes in the caption too."""
        if here.place != "group":
            return []
        found: list[Language] = []
        for seat in here.table.seats():
            language = await self._language_of(seat.user_id)
            if seat.user_id is not None and language != shown and language not in found:
                found.append(language)
        return found

    async def _deal(
        self, update: Update, query: CallbackQuery, here: Here, *, reshuffle: bool = False
    ) -> bool:
        """Deal the next card: the theme's opening first, then the deck, in turns."""
        if not await self._may_deal(query, here):
            return True
        theme = here.session.theme
        if theme is not None and THEMES[theme].adult and not await self._adult_ok(here):
            await _answer(query, t(here.lang, "adult_first"))
            await self._adult_prompt(update, here, edit=False)
            return True
        opening = None if reshuffle or theme is None else engine.next_opening(
            here.table, self.library, theme
        )  # fmt: skip
        if opening is not None:
            return await self._deal_opening(update, query, here, opening)
        # The card is chosen from the session as read (current: see ``sole_writer``) and
        # written once, after it went out, with the table and the stats (one round trip);
        # a card that certainly did not go out leaves them as they were.
        session = here.session.model_copy(deep=True)
        info = self._deck_info(session)
        if info is None:
            return False
        theme, level, content, several = info
        if reshuffle:
            session = engine.reshuffle(session, theme, level, content)
        here.session, result = engine.draw(session, self.library, self.rng)
        key_ = deck_key(theme, level, content)
        if result.card is None:
            await _answer(query)
            log.info("deck_exhausted", chat_id=here.chat_id, deck=key_)
            await self._clear_card_keyboards(here.table)
            await self._show(
                update,
                t(here.lang, "exhausted", cards=count_cards(here.lang, result.total)),
                keyboards.exhausted_keyboard(
                    here.lang, theme, level, content,
                    next_level=engine.deeper_level(here.session, self.library),
                    several_levels=several,
                ),
                edit=False,
            )  # fmt: skip
            return True
        card = result.card
        now = self.clock()

        def dealt_card(current: Session) -> Session:
            if reshuffle:
                current = engine.reshuffle(current, theme, level, content)
            return engine.mark_drawn(current, key_, card.id)

        def record(table: Table) -> Table:
            return engine.record_deal(table, card, now=now, pace=self.pace_cards)[0]

        game_id = here.game_id
        changes: list[Change[Any]] = [self._noted(game_id, update.update_id, dealt_card)]
        stats = self._stats_change(here.user, drew=True)
        if stats is not None:
            changes.append(stats)
        # The captions are made from the table as it will be.
        here.table, dealt = engine.record_deal(
            here.table.model_copy(deep=True), card, now=now, pace=self.pace_cards
        )
        await _answer(query, t(here.lang, "reshuffled") if reshuffle else None)
        try:
            await self._deliver_deck(here, card, dealt, (result.drawn, result.total),
                                     record=record, also=changes)  # fmt: skip
        except (TelegramError, OSError) as error:
            # Never seen, so not drawn (nothing was written); the next "Next card" sends it.
            log.warning("card_send_failed", chat_id=here.chat_id, card=card.id, error=repr(error))
            await self.storage.update_session(game_id, lambda s: engine.owe(s, card.id))
            raise
        await self._drop_menu(query)
        log.debug("card_drawn", chat_id=here.chat_id, card=card.id, drawn=result.drawn)
        return True

    async def _deal_opening(
        self, update: Update, query: CallbackQuery, here: Here, card: Card
    ) -> bool:
        now = self.clock()

        def record(table: Table) -> Table:
            return engine.record_opening(table, card, now=now)

        here.table = record(here.table.model_copy(deep=True))
        await _answer(query)
        await self._deliver(here, card, kind="opening", record=record,
                            also=[self._noted(here.game_id, update.update_id)])  # fmt: skip
        await self._drop_menu(query)
        log.info("opening_dealt", chat_id=here.chat_id, card=card.id)
        return True

    def _noted(
        self, game_id: int, update_id: int, mutate: Callable[[Session], Session] | None = None
    ) -> Change[Session]:
        """The game's session (changed by ``mutate``) noting ``update_id``: written with
        the update's other records, so that a redelivery finds it (:meth:`_answer_again`)."""

        def note(session: Session) -> Session:
            return engine.note_update(mutate(session) if mutate else session, update_id)

        return Change(Session, str(game_id), lambda: Session(chat_id=game_id), note)

    async def _store(self, here: Here, changes: Sequence[Change[Any]]) -> None:
        """Write ``changes`` together; the game's table and session as stored become
        ``here``'s."""
        self._adopt(here, await self.storage.update_records(changes))

    @staticmethod
    def _adopt(here: Here, stored: Sequence[object]) -> None:
        for record in stored:
            if isinstance(record, Table):
                here.table = record
            elif isinstance(record, Session):
                here.session = record

    async def _deliver_deck(
        self,
        here: Here,
        card: Card,
        dealt: engine.DealInfo,
        progress: tuple[int, int],
        *,
        record: Callable[[Table], Table] | None = None,
        also: Sequence[Change[Any]] = (),
    ) -> None:
        """:meth:`_deliver` for a deck card: its progress, roles, pace offer and deeper
        level, from what the deal said of it."""
        last = progress[0] >= progress[1]
        deeper = (
            engine.deeper_level(here.session, self.library) if dealt.offer_deeper or last else None
        )
        pace_line = None
        if dealt.offer_deeper:
            key = "pace_offer" if deeper is not None else "pace_offer_last"
            pace_line = ("pace", key, dealt.paced)
        await self._deliver(
            here, card, roles=dealt.roles, progress=progress, deeper=deeper, last=last,
            pace_line=pace_line, record=record, also=also,
        )  # fmt: skip

    async def _deliver(
        self,
        here: Here,
        card: Card,
        *,
        kind: str = "deck",
        roles: tuple[str, str] | None = None,
        progress: tuple[int, int] | None = None,
        deeper: int | None = None,
        last: bool = False,
        pace_line: tuple[str, str, int] | None = None,
        record: Callable[[Table], Table] | None = None,
        also: Sequence[Change[Any]] = (),
    ) -> None:
        """Send ``card`` to every viewer of the game, each in their language, with their
        keyboard; then write the table (``record``, and each chat's card message) and the
        records in ``also`` together, while the previous card's keyboard in each chat goes.
        ``here.table`` is the table as it will be.

        A send to this chat that may have arrived (timed out after it was sent) counts as
        shown: it is written like one, and logged as ``card_send_uncertain``. One that
        certainly failed while nobody else got the card raises, with nothing written.
        """
        info = self._deck_info(here.session)
        if info is None:
            return
        theme, level, content, several = info
        table = here.table
        drawer = engine.drawer_of_current(table) if kind == "deck" else None
        next_drawer = engine.next_drawer(table)
        sent: dict[str, int] = {}
        uncertain: list[str] = []
        failed: BaseException | None = None
        for viewer in await self._viewers(here, drawer):
            language = viewer.language
            title = keyboards.deck_title(language, theme, level, content, several_levels=several)
            lines: list[str] = []
            if kind == "opening":
                lines.append(t(language, "opening_caption", deck=title))
            elif kind == "closing":
                lines.append(t(language, "closing_caption", deck=title))
            elif progress is not None:
                lines.append(f"{title} · {progress[0]}/{progress[1]}")
            if roles is not None:
                key = "turn_both" if table.both_answer else "turn_ask"
                if content == "tasks" and not table.both_answer:
                    key = "turn_task"  # a task is done, not answered
                lines.append(t(language, key, first=roles[0], second=roles[1]))
            elif kind == "deck" and len(table.player_names) == 1:
                lines.append(t(language, "turn_ask_one", first=table.player_names[0]))
            others = await self._other_languages(here, language)
            # A group's keyboard is everyone's: Next card stays, and a tap out of turn is
            # answered with whose turn it is. A room's phone has it for its drawer only.
            may_draw = (
                next_drawer is None
                or here.place == "group"
                or next_drawer.user_id == viewer.user_id
            )
            footer_lines: list[str] = []
            if (
                kind != "closing"
                and next_drawer is not None
                and (here.place == "group" or not may_draw)
            ):
                footer_lines.append(t(language, "next_drawer", name=next_drawer.name))
            if pace_line is not None:
                footer_lines.append(t(language, pace_line[1], count=pace_line[2]))
            caption = caption_text(card, language, header=lines, also=others, footer=footer_lines)
            markup: InlineKeyboardMarkup | None = None
            if kind != "closing":
                swap_ok = drawer is None or drawer.user_id == viewer.user_id
                markup = keyboards.card_keyboard(
                    language,
                    CardButtons(
                        theme, level, content, card.id,
                        can_draw=may_draw, can_swap=swap_ok, deck_card=kind == "deck",
                        deeper=deeper, last=last, several_levels=several,
                    ),
                )  # fmt: skip
            try:
                message = await self.cards.send(
                    self._bot, viewer.chat_id, card, language,
                    caption=caption, footer=self._footer(card, language), reply_markup=markup,
                )  # fmt: skip
            except (TelegramError, OSError) as error:
                if viewer.chat_id != here.chat_id:
                    # A partner's phone we cannot reach must not stop the game on this one.
                    log.warning("card_send_to_partner_failed", chat_id=viewer.chat_id,
                                card=card.id, error=repr(error))  # fmt: skip
                elif delivery_failed(error):
                    failed = error
                else:
                    # Sent, but the reply was lost: the player very likely saw the card, so
                    # it counts as dealt, with no apology and no repeat (docs/game.md).
                    log.warning("card_send_uncertain", chat_id=viewer.chat_id, card=card.id,
                                error=type(error).__name__)  # fmt: skip
                    uncertain.append(str(viewer.chat_id))
                continue
            sent[str(viewer.chat_id)] = message.message_id
        if failed is not None and not sent:
            raise failed
        await self._replace_card_keyboards(here, sent, record, also=also, uncertain=uncertain)

    async def _replace_card_keyboards(
        self,
        here: Here,
        sent: dict[str, int],
        record: Callable[[Table], Table] | None,
        *,
        also: Sequence[Change[Any]] = (),
        uncertain: Sequence[str] = (),
    ) -> None:
        """Write the table (with the new card messages) and ``also`` in one go; the old
        card's keyboard goes in each chat that got a new card (or may have)."""
        old = dict(here.table.card_messages)

        def mutate(table: Table) -> Table:
            if record is not None:
                table = record(table)
            table.card_messages = {**table.card_messages, **sent}
            return table

        drops = [
            self._drop_keyboard(int(chat), message_id)
            for chat, message_id in old.items()
            if (chat in sent and sent[chat] != message_id) or chat in uncertain
        ]
        game_id = here.game_id
        change = Change(Table, str(game_id), lambda: Table(game_id=game_id), mutate)
        stored, *_dropped = await asyncio.gather(
            self.storage.update_records([change, *also]), *drops
        )
        assert isinstance(stored, list)
        self._adopt(here, stored)

    async def _drop_menu(self, query: CallbackQuery) -> None:
        """The menu a card was dealt from has done its job: its buttons go."""
        message = query.message
        if isinstance(message, Message) and message.text is not None:
            await self._drop_keyboard(message.chat.id, message.message_id)

    async def _clear_card_keyboards(self, table: Table) -> None:
        for chat, message_id in table.card_messages.items():
            await self._drop_keyboard(int(chat), message_id)

    async def _delete(self, message: object) -> None:
        if isinstance(message, Message):
            with contextlib.suppress(TelegramError):
                await message.delete()

    async def _drop_keyboard(self, chat_id: int, message_id: int) -> None:
        try:
            await self._bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
        except TelegramError as error:
            # Gone, too old, or already without buttons: nothing left to tidy.
            log.debug("card_keyboard_not_removed", chat_id=chat_id, error=str(error))

    async def _on_swap(
        self, update: Update, query: CallbackQuery, here: Here, card_id: str
    ) -> bool:
        table = here.table
        if table.current != card_id or here.session.last_card != card_id:
            return False
        drawer = engine.drawer_of_current(table)
        if drawer is not None and drawer.user_id != here.user_id:
            await _answer(query, t(here.lang, "swap_not_yours", name=drawer.name))
            return True
        info = self._deck_info(here.session)
        if info is None:
            return False
        # As a draw: chosen from the session as read, written once after it went out.
        session, result = engine.swap(
            here.session.model_copy(deep=True), self.library, card_id, self.rng
        )
        card = result.card
        if card is None or card.id == card_id:
            await _answer(query, t(here.lang, "swap_last"))
            return True
        key_ = deck_key(*info[:3])

        def record(tb: Table) -> Table:
            return engine.record_swap(tb, card_id, card)

        def swapped(current: Session) -> Session:
            return engine.mark_swapped(current, key_, card_id, card.id)

        here.session = session
        here.table = record(here.table.model_copy(deep=True))
        await _answer(query, t(here.lang, "swapped"))
        # The passed card goes back into the deck, and out of the chat.
        for chat, message_id in table.card_messages.items():
            with contextlib.suppress(TelegramError):
                await self._bot.delete_message(int(chat), message_id)
        roles = engine.roles(here.table, here.table.turn - 1)
        noted = self._noted(here.game_id, update.update_id, swapped)
        await self._deliver(here, card, roles=roles, progress=(result.drawn, result.total),
                            last=result.drawn >= result.total, record=record,
                            also=[noted])  # fmt: skip
        log.info("card_swapped", chat_id=here.chat_id, card=card_id, new=card.id)
        return True

    async def _on_save(
        self, update: Update, query: CallbackQuery, here: Here, card_id: str
    ) -> bool:
        """Save the card, or take it out when it was saved (this person's own list)."""
        if here.user is None or self.library.card(card_id) is None:
            return False
        user_id, game_id = here.user.id, here.game_id
        player = await self._read(Player, str(user_id))
        saved = player is None or card_id not in player.favourites
        changes: list[Change[Any]] = [
            Change(Player, str(user_id), lambda: Player(user_id=user_id),
                   lambda p: engine.set_favourite(p, card_id, saved=saved)),
            self._noted(game_id, update.update_id),
        ]  # fmt: skip
        if saved:
            changes.append(
                Change(Table, str(game_id), lambda: Table(game_id=game_id), _count_saved)
            )
        await self._store(here, changes)
        await _answer(query, t(here.lang, "saved" if saved else "unsaved"))
        return True

    async def _on_previous(
        self, update: Update, query: CallbackQuery, here: Here, steps: int
    ) -> bool:
        card_id = engine.previous_card(here.table, steps)
        card = self.library.card(card_id) if card_id else None
        await _answer(query, None if card else t(here.lang, "no_previous"))
        if card is None:
            return True
        caption = caption_text(card, here.lang, header=[t(here.lang, "previous_caption")])
        await self.cards.send(
            self._bot, here.chat_id, card, here.lang, caption=caption,
            footer=self._footer(card, here.lang),
            reply_markup=keyboards.previous_keyboard(here.lang, card.id, steps),
        )  # fmt: skip
        if steps > 1 and _is_photo(query.message):
            await self._delete(query.message)  # one look back on the screen at a time
        return True

    def _footer(self, card: Card, language: Language) -> str:
        """The image's footer: the card's own deck (an opening or closing card belongs to
        the theme), so one image per card and language serves every game."""
        if card.content is None:
            return theme_name(language, card.theme)
        several = len(engine.theme_levels(self.library, card.theme)) > 1
        return keyboards.deck_title(language, card.theme, card.level, card.content,
                                    several_levels=several)  # fmt: skip

    async def _send_favourite(self, update: Update, here: Here, number: int) -> None:
        player = await self._read(Player, str(here.user_id)) if here.user else None
        cards = [
            card
            for card_id in (player.favourites if player else [])
            if (card := self.library.card(card_id)) is not None
        ]
        if not cards:
            await self._show_menu(update, here, prefix=t(here.lang, "favourites_empty"), edit=False)
            return
        number = min(max(number, 1), len(cards))
        card = cards[number - 1]
        caption = caption_text(card, here.lang, header=[
            t(here.lang, "favourite_caption", number=number, total=len(cards))
        ])  # fmt: skip
        await self.cards.send(
            self._bot, here.chat_id, card, here.lang, caption=caption,
            footer=self._footer(card, here.lang),
            reply_markup=keyboards.favourite_keyboard(here.lang, card.id, number, len(cards)),
        )  # fmt: skip

    async def _on_end(self, update: Update, query: CallbackQuery, here: Here) -> bool:
        """End the game: the theme's closing card, then a short summary."""
        theme = here.session.theme
        closing = engine.closing_card(self.library, theme) if theme else None
        await _answer(query)
        if closing is not None:
            # Dealing it removes the last card's keyboard in each chat, as any deal does.
            await self._deliver(here, closing, kind="closing")
        else:
            await self._clear_card_keyboards(here.table)
        now = self.clock()
        summary: list[engine.Summary] = []

        def end(table: Table) -> Table:
            summary.clear()
            table, result = engine.end_game(table, now=now)
            summary.append(result)
            table.card_messages = {}
            return table

        game_id = here.game_id
        await self._store(here, [
            Change(Table, str(game_id), lambda: Table(game_id=game_id), end),
            self._noted(game_id, update.update_id, _to_themes),
        ])  # fmt: skip
        result = summary[0]
        log.info("game_ended", chat_id=here.chat_id, cards=result.cards, minutes=result.minutes)
        for viewer in await self._viewers(here, None):
            # UserStats counts every card this person drew, in every game.
            stats = await self.storage.get_user_stats(viewer.user_id) if viewer.user_id else None
            total = max(stats.cards_drawn if stats else 0, result.cards)
            # A game shorter than a minute took "<1 min", not "0 min".
            text = t(viewer.language, "summary", cards=result.cards,
                     minutes=result.minutes or "<1", saved=result.saved, total=total)  # fmt: skip
            _menu, markup = keyboards.menu_for(
                here.session, self.library, viewer.language, place=here.place, table=here.table
            )
            await self._bot.send_message(viewer.chat_id, text, reply_markup=markup)
        return True

    # -- rooms ------------------------------------------------------------------------------
    def _invite(self, number: int) -> str:
        return f"https://t.me/{self._bot.username}?start={ROOM_PREFIX}{number}"

    async def _make_room(self, update: Update, here: Here) -> None:
        if here.place == "room":  # the link again, for a partner who lost it
            link = self._invite(ROOM_GAME_BASE - here.game_id)
            await self._show_menu(update, here, prefix=t(here.lang, "room_created", link=link),
                                  edit=False)  # fmt: skip
            return
        if here.place != "private" or here.user is None:
            await self._show_menu(update, here, prefix=t(here.lang, "room_private_only"),
                                  edit=False)  # fmt: skip
            return
        number = secrets.randbits(40) | 1
        game_id = room_game_id(number)
        user = here.user

        def create(table: Table) -> Table:
            table.room = True
            table, _result = engine.join_room(table, user.id, here.chat_id, user.first_name)
            return table

        await self._update_table(game_id, create)
        await self._link(here.chat_id, game_id)
        link = self._invite(number)
        log.info("room_created", chat_id=here.chat_id, room=number)
        here = await self._here(update) or here
        text, markup = self._menu(here)
        await self._show(update, f"{t(here.lang, 'room_created', link=link)}\n\n{text}",
                         markup, edit=False)  # fmt: skip

    async def _join_room(self, update: Update, payload: str) -> None:
        here = await self._here(update)
        if here is None or here.user is None:
            return
        if here.language is None:
            await self._ask_language(update)
            return
        if here.place != "private" and here.place != "room":
            await self._show_menu(
                update, here, prefix=t(here.lang, "room_private_only"), edit=False
            )
            return
        number = int(payload) if payload.isdigit() and len(payload) <= 15 else 0
        game_id = room_game_id(number)
        table = await self.storage.get_record(Table, str(game_id)) if number else None
        if table is None or not table.room:
            await self._show_menu(update, here, prefix=t(here.lang, "room_unknown"), edit=False)
            return
        if here.place == "room" and here.game_id != game_id:
            await self._leave_room(update, here, quiet=True)
        user, chat_id = here.user, here.chat_id
        outcome: list[engine.JoinResult] = []

        def join(current: Table) -> Table:
            outcome.clear()
            current, result = engine.join_room(current, user.id, chat_id, user.first_name)
            outcome.append(result)
            return current

        table = await self._update_table(game_id, join)
        result = outcome[0]
        if result == "full":
            await self._show_menu(update, here, prefix=t(here.lang, "room_full"), edit=False)
            return
        await self._link(here.chat_id, game_id)
        here = await self._here(update) or here
        log.info("room_joined", chat_id=here.chat_id, result=result)
        if result == "already":
            await self._show_menu(update, here, prefix=t(here.lang, "room_own"), edit=False)
            return
        others = [seat for seat in table.seats() if seat.user_id != user.id]
        host = others[0].name if others else ""
        key = "room_back" if result == "back" else "room_joined"
        await self._show_menu(update, here, prefix=t(here.lang, key, name=host), edit=False)
        for uid, partner_chat in table.partners():
            if uid != user.id:
                language = await self._language_of(uid)
                await self._bot.send_message(
                    partner_chat, t(language, "room_partner_joined", name=user.first_name)
                )

    async def _leave_room(self, update: Update, here: Here, *, quiet: bool = False) -> None:
        if here.place != "room" or here.user is None:
            if not quiet:
                await self._show_menu(update, here, prefix=t(here.lang, "not_in_room"), edit=False)
            return
        user = here.user
        own_card = here.table.card_messages.get(str(here.chat_id))
        table = await self._update_table(here.game_id, lambda tb: engine.leave_room(tb, user.id))
        await self._link(here.chat_id, None)
        if own_card is not None:
            await self._drop_keyboard(here.chat_id, own_card)
        log.info("room_left", chat_id=here.chat_id)
        for uid, partner_chat in table.partners():
            if uid != user.id:
                language = await self._language_of(uid)
                await self._bot.send_message(
                    partner_chat, t(language, "room_partner_left", name=user.first_name)
                )
        if quiet:
            return
        own = await self._here(update)
        if own is not None:
            await self._show_menu(update, own, prefix=t(own.lang, "room_left"), edit=False)

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
            if not await self._wait_out_send_window(chat.id):
                return
            here = await self._here(update)
            if here is None:
                return
            text, markup = self._menu(here)
            await chat.send_message(f"{t(here.lang, 'error')}\n\n{text}", reply_markup=markup)
        except Exception as error:  # noqa: BLE001 - the error handler must never raise
            log.warning("error_reply_failed", error=repr(error))

    async def _wait_out_send_window(self, chat_id: int) -> bool:
        """Wait until Telegram lets this chat be sent to again (a 429's window: a send
        inside it would be refused); False, with nothing sent, when that is too long."""
        guard = getattr(self._bot, "rate_limiter", None)  # an ExtBot has one
        window = guard.blocked_for(chat_id) if isinstance(guard, SendGuard) else 0.0
        if window > _APOLOGY_MAX_WAIT:
            log.warning("error_reply_skipped", chat_id=chat_id, window_s=round(window, 1))
            return False
        if window > 0:
            await asyncio.sleep(window)
        return True


async def _answer(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press; a query Telegram no longer accepts is not an error for us."""
    try:
        await query.answer(text)
    except BadRequest as error:
        # "query is too old": the press waited too long (e.g. while the bot was down).
        log.info("callback_answer_failed", error=str(error))


def _is_photo(message: object) -> bool:
    return isinstance(message, Message) and bool(message.photo)


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


def _mark_names_asked(table: Table) -> Table:
    table.names_asked = True
    return table


def _set_both(table: Table, *, both: bool) -> Table:
    table.both_answer = both
    return table


def _count_saved(table: Table) -> Table:
    table.saved_in_game += 1
    return table
