"""Sending a card as a photo, uploading each image to Telegram only once.

The first send of a card in a language renders it (or takes the rendered bytes
from the storage cache) and uploads it; the ``file_id`` Telegram gives back is
kept in storage, and every later send of that card in that language reuses it.
Concurrent sends of a card that is not uploaded yet are single-flight: one
renders and uploads, the others wait for it and reuse its file id. Across replicas the
same holds through the storage: the uploader takes a claim with ``cache_add`` (SET NX
with a lease), the others poll for the file id it stores, and upload themselves only
if it does not come within ``upload_wait`` (its replica died or Redis is away: then each
replica's claim is its own, and a card may be uploaded once per replica).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog
from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from vechnost_bot.game.content import Card
from vechnost_bot.game.render import RENDER_VERSION, render_card_async
from vechnost_bot.game.typography import bind_short_words
from vechnost_bot.metrics import CARDS_RENDERED, FILE_ID_REUSED
from vechnost_bot.storage.base import Storage
from vechnost_bot.storage.records import Language

__all__ = ["MAX_CAPTION", "CardSender", "SendStats", "caption_text"]

log = structlog.get_logger(__name__)

MAX_CAPTION = 1024
"""Telegram's limit for a photo caption, in characters."""

IMAGE_TTL = 7 * 24 * 3600.0
FILE_ID_TTL = 180 * 24 * 3600.0
UPLOAD_LEASE = 15.0
"""How long one replica's claim to upload a card holds (an upload takes well under it)."""
UPLOAD_WAIT = 5.0
"""The longest another replica waits for that upload's file id before uploading itself."""
_UPLOAD_POLL = 0.05
LOCAL_FILE_IDS = 20_000
"""File ids kept in this process (every card in every language fits), so a send needs
no storage round trip once a card was sent."""


def caption_text(
    card: Card,
    language: Language,
    *,
    header: Sequence[str] = (),
    also: Sequence[Language] = (),
    footer: Sequence[str] = (),
) -> str:
    """A card's caption: the header lines, the card's text (so screen readers,
    notifications and chat search have it), its text in ``also`` languages, the footer."""
    parts = ["\n".join(header)] if header else []
    parts.append(bind_short_words(card.text(language), language))
    parts += [bind_short_words(card.text(other), other) for other in also if other != language]
    if footer:
        parts.append("\n".join(footer))
    caption = "\n\n".join(part for part in parts if part)
    return caption if len(caption) <= MAX_CAPTION else caption[: MAX_CAPTION - 1] + "…"


def _upload_key(fid_key: str) -> str:
    """The storage key of the claim to upload the card whose file id is ``fid_key``."""
    return f"{fid_key}:uploading"


@dataclass
class SendStats:
    """Counts since start, for the benchmark and the status page."""

    sent: int = 0
    reused: int = 0
    rendered: int = 0


@dataclass
class _Flight:
    """One key's lock and how many sends hold or wait for it (the entry goes at zero)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CardSender:
    """Renders, caches and sends card photos."""

    def __init__(
        self,
        storage: Storage,
        *,
        image_ttl: float = IMAGE_TTL,
        file_id_ttl: float = FILE_ID_TTL,
        upload_lease: float = UPLOAD_LEASE,
        upload_wait: float = UPLOAD_WAIT,
    ) -> None:
        self._storage = storage
        self._upload_lease = upload_lease
        self._upload_wait = upload_wait
        self._image_ttl = image_ttl
        self._file_id_ttl = file_id_ttl
        self.stats = SendStats()
        self._flights: dict[str, _Flight] = {}
        self._file_ids: OrderedDict[str, bytes] = OrderedDict()

    async def _file_id(self, key: str) -> bytes | None:
        """The card's file id: kept here, else from the storage (another process's upload)."""
        found = self._file_ids.get(key)
        if found is None:
            found = await self._storage.cache_get(key)
            if found:
                self._keep_file_id(key, found)
        return found

    def _keep_file_id(self, key: str, file_id: bytes) -> None:
        self._file_ids[key] = file_id
        self._file_ids.move_to_end(key)
        if len(self._file_ids) > LOCAL_FILE_IDS:
            self._file_ids.popitem(last=False)

    @asynccontextmanager
    async def _single_flight(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock; the table entry is removed when nobody uses it any more."""
        flight = self._flights.setdefault(key, _Flight())
        flight.users += 1
        try:
            async with flight.lock:
                yield
        finally:
            flight.users -= 1
            if flight.users == 0:
                del self._flights[key]

    @staticmethod
    def image_key(card: Card, language: Language) -> str:
        """Storage cache key of a card's rendered bytes."""
        return f"card:img:v{RENDER_VERSION}:{language}:{card.id}"

    @staticmethod
    def file_id_key(bot_id: int, card: Card, language: Language) -> str:
        """Storage cache key of a card's Telegram file id (file ids belong to one bot)."""
        return f"card:fid:v{RENDER_VERSION}:{bot_id}:{language}:{card.id}"

    async def image(self, card: Card, language: Language, footer: str) -> bytes:
        """The card's image bytes, from the cache or freshly rendered (then cached)."""
        key = self.image_key(card, language)
        cached = await self._storage.cache_get(key)
        if cached:
            return cached
        async with self._single_flight(key):
            cached = await self._storage.cache_get(key)  # rendered while we waited?
            if cached:
                return cached
            data = await render_card_async(card, language, footer=footer)
            CARDS_RENDERED.inc()
            self.stats.rendered += 1
            await self._storage.cache_set(key, data, self._image_ttl)
            return data

    async def send(
        self,
        bot: Bot,
        chat_id: int,
        card: Card,
        language: Language,
        *,
        caption: str,
        footer: str,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Message:
        """Send ``card`` as a photo: by stored file id when there is one, else by upload."""
        fid_key = self.file_id_key(bot.id, card, language)
        stored = await self._file_id(fid_key)
        if stored:
            message = await self._send_file_id(
                bot, chat_id, card, language, stored, caption, reply_markup
            )
            if message is not None:
                return message
        async with self._single_flight(fid_key):
            # Another send of this card may have uploaded it while we waited for the lock.
            self._file_ids.pop(fid_key, None)
            fresh = await self._file_id(fid_key)
            if fresh and fresh != stored:
                message = await self._send_file_id(
                    bot, chat_id, card, language, fresh, caption, reply_markup
                )
                if message is not None:
                    return message
            claimed = await self._claim_upload(fid_key)
            if not claimed:
                # Another replica uploads this card now: use its file id when it comes.
                theirs = await self._await_upload(fid_key)
                if theirs is not None:
                    message = await self._send_file_id(
                        bot, chat_id, card, language, theirs, caption, reply_markup
                    )
                    if message is not None:
                        return message
            try:
                data = await self.image(card, language, footer)
                message = await bot.send_photo(
                    chat_id, data, caption=caption, reply_markup=reply_markup
                )
                self.stats.sent += 1
                if message.photo:
                    file_id = message.photo[-1].file_id.encode("utf-8")
                    self._keep_file_id(fid_key, file_id)
                    await self._storage.cache_set(fid_key, file_id, self._file_id_ttl)
            finally:
                if claimed:
                    await self._storage.cache_set(_upload_key(fid_key), b"", 0)
            return message

    # -- one upload across replicas -------------------------------------------------------
    async def _claim_upload(self, fid_key: str) -> bool:
        """True when this process uploads the card: it took the storage's claim (SET NX
        with a lease), so other replicas wait for its file id instead of uploading too."""
        return await self._storage.cache_add(_upload_key(fid_key), b"1", self._upload_lease)

    async def _await_upload(self, fid_key: str) -> bytes | None:
        """The file id another replica's upload stores, polled until ``upload_wait``; None
        when it did not come (that replica died or is slow: this one uploads then)."""
        deadline = asyncio.get_running_loop().time() + self._upload_wait
        while True:
            found = await self._storage.cache_get(fid_key)
            if found:
                self._keep_file_id(fid_key, found)
                return found
            if asyncio.get_running_loop().time() >= deadline:
                log.info("card_upload_wait_timed_out", key=fid_key, waited=self._upload_wait)
                return None
            await asyncio.sleep(_UPLOAD_POLL)

    async def _send_file_id(
        self,
        bot: Bot,
        chat_id: int,
        card: Card,
        language: Language,
        file_id: bytes,
        caption: str,
        reply_markup: InlineKeyboardMarkup | None,
    ) -> Message | None:
        """Send by a stored file id; None when Telegram no longer accepts it."""
        try:
            message = await bot.send_photo(
                chat_id, file_id.decode("utf-8"), caption=caption, reply_markup=reply_markup
            )
        except BadRequest as error:
            # Telegram forgot the file (or it belongs to another bot): upload again.
            log.warning("card_file_id_rejected", card=card.id, language=language, error=str(error))
            return None
        FILE_ID_REUSED.inc()
        self.stats.sent += 1
        self.stats.reused += 1
        return message
