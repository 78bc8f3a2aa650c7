"""The composition root: ``vechnost run``.

Builds and connects everything, in order: the health server, the storage (serving
from the local store), the Telegram bot (python-telegram-bot's manual lifecycle:
initialize → start → polling), and then, in the background, the Redis lifecycle, which
the storage follows back to Redis when it is ready: start-up never waits on Redis.
SIGTERM or Ctrl-C sets an event; the pieces then stop in reverse order, each within its
own time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

import structlog
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from vechnost_bot import __version__
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.delivery import AiohttpRequest, SendGuard
from vechnost_bot.bot.handlers import GameBot, set_commands
from vechnost_bot.bot.polling import ALLOWED_UPDATES, TolerantBot
from vechnost_bot.bot.processor import ChatOrderedProcessor
from vechnost_bot.config import Settings
from vechnost_bot.errors import ConfigError, TelegramTokenError
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.ops.health import HealthServer
from vechnost_bot.ops.snapshot import OverallStatus, RedisSnapshot, Snapshot, TelegramSnapshot
from vechnost_bot.redis.autostart import RedisAutoStartManager
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.redis import connect_redis

__all__ = ["VechnostApp", "build_application", "check_token", "command", "start_polling"]

log = structlog.get_logger(__name__)

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

_TOKEN_RE: Final = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
POLL_TIMEOUT: Final = 10.0
_RETRY_FIRST: Final = 1.0
_RETRY_MAX: Final = 30.0
# Seconds each step may take when stopping, in stop order.
_STOP_TIMEOUTS: Final = {
    "health": 5.0,
    "polling": 15.0,
    "bot": 10.0,
    "bot_shutdown": 10.0,
    "storage": 10.0,
    "redis": 20.0,
}


def check_token(token: str | None) -> str:
    """The token when it looks like a Telegram bot token; else :class:`TelegramTokenError`."""
    if token is None:
        raise TelegramTokenError(
            "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in the environment "
            "or in .env",
            variable="TELEGRAM_BOT_TOKEN",
        )
    if not _TOKEN_RE.fullmatch(token):
        raise TelegramTokenError(
            "TELEGRAM_BOT_TOKEN is malformed: it should look like 123456789:AAE… "
            "(digits, a colon, then 30 or more letters, digits, - or _); "
            "copy it again from @BotFather",
            variable="TELEGRAM_BOT_TOKEN",
        )
    return token


def build_application(
    token: str,
    game: GameBot,
    *,
    base_url: str,
    base_file_url: str,
    concurrent_updates: int = 64,
    connections: int = 16,
    read_timeout: float = 15.0,
    send_retries: int = 3,
    pacing: bool = True,
) -> AnyApplication:
    """A python-telegram-bot Application with the game's handlers, pointed at ``base_url``.

    Updates of one chat run in order, chats concurrently (:class:`ChatOrderedProcessor`);
    getUpdates survives updates it cannot parse (:class:`TolerantBot`); every call goes
    through :class:`SendGuard` (429 honoured per chat, Telegram's limits kept).
    """
    bot = TolerantBot(
        token,
        base_url=base_url,
        base_file_url=base_file_url,
        request=AiohttpRequest(
            connection_pool_size=connections,
            connect_timeout=5.0,
            read_timeout=read_timeout,
            pool_timeout=10.0,
        ),
        get_updates_request=HTTPXRequest(
            connect_timeout=5.0, read_timeout=POLL_TIMEOUT + 10.0, pool_timeout=5.0
        ),
        rate_limiter=SendGuard(max_retries=send_retries, pacing=pacing),
    )
    application: AnyApplication = (
        ApplicationBuilder()
        .bot(bot)
        .concurrent_updates(ChatOrderedProcessor(concurrent_updates))
        .build()
    )
    game.install(application)
    return application


async def start_polling(
    application: AnyApplication,
    *,
    poll_timeout: float = POLL_TIMEOUT,
    error_callback: Callable[[TelegramError], None] | None = None,
) -> None:
    """Start getUpdates for the update types the bot handles, from the first unconfirmed one."""
    updater = application.updater
    if updater is None:
        raise RuntimeError("the application was built without an updater")
    await updater.start_polling(
        poll_interval=0.0,
        timeout=dt.timedelta(seconds=poll_timeout),
        bootstrap_retries=-1,
        allowed_updates=list(ALLOWED_UPDATES),
        drop_pending_updates=False,
        error_callback=error_callback,
    )


async def _bounded(step: str, awaitable: Awaitable[object], limit: float) -> None:
    """Await one stop step; log (never raise) when it fails or runs over its time."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(awaitable, limit)
    except TimeoutError:
        log.warning("shutdown_step_timed_out", step=step, timeout=limit)
    except Exception as error:  # noqa: BLE001 - shutdown goes on whatever one step did
        log.warning("shutdown_step_failed", step=step, error=repr(error))
    else:
        log.info("shutdown_step_done", step=step, seconds=round(time.monotonic() - started, 3))


class VechnostApp:
    """Everything ``vechnost run`` runs, wired together. ``start()`` / ``stop()``."""

    def __init__(self, settings: Settings, *, library: Library | None = None) -> None:
        self.settings = settings
        self._library = library
        self.started_at = time.monotonic()
        self.lifecycle: RedisAutoStartManager | None = None
        self.storage: HybridStorage | None = None
        self.application: AnyApplication | None = None
        self.game: GameBot | None = None
        self.health: HealthServer | None = None
        self._storage_started = False
        self._redis_start: asyncio.Task[None] | None = None
        self._bot_initialized = False
        self._bot_started = False
        self._stopped = False
        self._telegram_error: str | None = None
        self._telegram_error_at: float | None = None

    # -- facts ------------------------------------------------------------------------
    @property
    def polling(self) -> bool:
        """True while the updater is polling Telegram."""
        app = self.application
        return bool(app is not None and app.updater is not None and app.updater.running)

    def ready(self) -> bool:
        """Ready for traffic: polling, and the storage started (Redis or memory)."""
        return self.polling and self._storage_started

    def _telegram(self) -> TelegramSnapshot:
        if self.polling:
            state = "polling"
        elif self._stopped:
            state = "stopped"
        else:
            state = "retrying" if self._telegram_error else "starting"
        return {
            "polling": self.polling,
            "state": state,
            "last_error": self._telegram_error,
            "last_error_at": self._telegram_error_at,
        }

    def snapshot(self) -> Snapshot:
        """The typed status snapshot (ops.snapshot) for /status, /readyz and ``status``."""
        storage = self.storage.status() if self.storage is not None else {}
        redis: RedisSnapshot | Mapping[str, object] = (
            self.lifecycle.status() if self.lifecycle is not None else {}
        )
        status: OverallStatus
        if not self.polling:
            status = "starting"
        elif (
            self.storage is not None
            and self.storage.mode == "redis"
            and self.storage.degraded_reason is None
        ):
            status = "ok"
        else:
            status = "degraded"
        username = ""
        if self.application is not None:
            with contextlib.suppress(RuntimeError):
                username = self.application.bot.username or ""
        return {
            "status": status,
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.started_at, 1),
            "pid": os.getpid(),
            "bot": {
                "polling": self.polling,
                "updates_handled": self.game.updates_handled if self.game else 0,
                "username": username,
                "cards_sent": self.game.cards.stats.sent if self.game else 0,
                "file_ids_reused": self.game.cards.stats.reused if self.game else 0,
            },
            "telegram": self._telegram(),
            "storage": storage,
            "redis": redis,
        }

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Health server (``/healthz`` answers from here on) → storage (local store) → bot
        (initialize, start, polling; ``/readyz`` turns ready) → Redis lifecycle, in the
        background."""
        settings = self.settings
        token = check_token(settings.token)
        library = self._library
        if library is None:
            library = await asyncio.to_thread(load_library)

        self.health = HealthServer(
            settings.health_host, settings.health_port, self.snapshot, self.ready
        )
        try:
            await self.health.start()
        except OSError as error:
            raise ConfigError(
                f"HEALTH_PORT {settings.health_port} on {settings.health_host} cannot be bound "
                f"({error.strerror or error}); choose a free port, or HEALTH_PORT=0 for any",
                variable="HEALTH_PORT",
            ) from None

        # The bot serves from the local store at once; the Redis lifecycle finds, adopts or
        # starts Redis in the background, and the storage fails back when it answers. A
        # slow or hanging redis-server never delays the first answer.
        self.lifecycle = RedisAutoStartManager(settings)
        self.storage = HybridStorage(
            client_factory=connect_redis,
            local_dir=settings.data_dir.local_store_dir,
            legacy_journal=settings.data_dir.journal,
            on_connection_lost=self.lifecycle.wake,
        )
        await self.storage.start(None)
        self._storage_started = True
        self.lifecycle.subscribe(self.storage.on_redis_event)

        self.game = GameBot(
            storage=self.storage,
            library=library,
            cards=CardSender(self.storage),
            rate_limit_updates=settings.rate_limit_updates,
            rate_limit_window=settings.rate_limit_window,
            pace_cards=settings.pace_cards,
        )
        self.application = build_application(
            token,
            self.game,
            base_url=settings.telegram_api_base_url,
            base_file_url=settings.file_base_url,
            send_retries=settings.telegram_send_retries,
            pacing=settings.telegram_pacing,
        )
        await self._initialize_bot(self.application)
        await self.application.start()
        self._bot_started = True
        await start_polling(self.application, error_callback=self._on_polling_error)
        log.info("bot_polling", username=self.application.bot.username)
        self._redis_start = asyncio.create_task(
            self._start_redis(self.lifecycle, self.storage), name="vechnost-redis-start"
        )
        try:
            await set_commands(self.application)
        except TelegramError as error:
            log.warning("set_commands_failed", error=str(error))

        log.info("vechnost_started", version=__version__, health_port=self.health.port)

    @staticmethod
    async def _start_redis(lifecycle: RedisAutoStartManager, storage: HybridStorage) -> None:
        """The Redis lifecycle's start, off the start-up path; then the storage follows it."""
        try:
            await lifecycle.start()
            await storage.start(lifecycle.endpoint)
        except Exception as error:
            log.exception("redis_start_failed", error=repr(error), action="serving from memory")
            return
        log.info("storage_ready", mode=storage.mode)

    async def _initialize_bot(self, application: AnyApplication) -> None:
        """getMe with retries: a rejected token ends the run, network trouble is retried."""
        delay = _RETRY_FIRST
        attempt = 0
        while True:
            attempt += 1
            try:
                await application.initialize()
            except InvalidToken:
                raise TelegramTokenError(
                    "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): the token was "
                    "revoked or mistyped; get a valid one from @BotFather",
                    variable="TELEGRAM_BOT_TOKEN",
                ) from None
            except RetryAfter as error:
                wait = float(error.retry_after if isinstance(error.retry_after, int | float)
                             else error.retry_after.total_seconds())  # fmt: skip
                log.warning("telegram_rate_limited", attempt=attempt, retry_in=wait)
                await asyncio.sleep(wait)
            except (NetworkError, TimedOut) as error:
                wait = delay * random.uniform(0.8, 1.2)
                log.warning(
                    "telegram_unreachable", attempt=attempt, retry_in=round(wait, 2),
                    error=str(error),
                )  # fmt: skip
                # `status` shows why the bot is not polling yet.
                self._telegram_error = f"{type(error).__name__}: {error}"
                self._telegram_error_at = time.time()
                await asyncio.sleep(wait)
                delay = min(delay * 2, _RETRY_MAX)
            else:
                self._bot_initialized = True
                log.info("telegram_connected", username=application.bot.username, attempt=attempt)
                return

    def _on_polling_error(self, error: TelegramError) -> None:
        # python-telegram-bot retries polling by itself with backoff; one line per failure.
        self._telegram_error = f"{type(error).__name__}: {error}"
        self._telegram_error_at = time.time()
        log.warning("telegram_polling_error", error=str(error), kind=type(error).__name__)

    async def stop(self) -> None:
        """Stop in reverse order, each step bounded; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        log.info("vechnost_stopping")
        if self.health is not None:
            await _bounded("health", self.health.stop(), _STOP_TIMEOUTS["health"])
        app = self.application
        if app is not None:
            if app.updater is not None and app.updater.running:
                await _bounded("polling", app.updater.stop(), _STOP_TIMEOUTS["polling"])
            if self._bot_started and app.running:
                await _bounded("bot", app.stop(), _STOP_TIMEOUTS["bot"])
            await _bounded("bot_shutdown", self._shutdown_bot(app), _STOP_TIMEOUTS["bot_shutdown"])
        starting = self._redis_start
        if starting is not None and not starting.done():
            starting.cancel("vechnost stopping while Redis was still starting")
            await asyncio.wait({starting}, timeout=_STOP_TIMEOUTS["redis"])
        if self.storage is not None:
            await _bounded("storage", self.storage.stop(), _STOP_TIMEOUTS["storage"])
        if self.lifecycle is not None:
            await _bounded("redis", self.lifecycle.stop(), _STOP_TIMEOUTS["redis"])
        log.info("vechnost_stopped")

    async def _shutdown_bot(self, app: AnyApplication) -> None:
        if self._bot_initialized:
            await app.shutdown()
        else:
            await app.bot.shutdown()


def _stop_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM and Ctrl-C; on Windows Ctrl-Break too (what deploy.ps1 sends to stop)."""
    if sys.platform == "win32":
        return (signal.SIGINT, signal.SIGBREAK)
    return (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _capture_stop_signals(stop: asyncio.Event) -> Iterator[None]:
    """Signal handlers only set ``stop``; the previous handlers come back afterwards."""
    loop = asyncio.get_running_loop()
    signals = _stop_signals()
    if sys.platform != "win32":
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
        return
    # Windows has no loop.add_signal_handler: a plain handler hands over to the loop.
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, lambda _sig, _frame: loop.call_soon_threadsafe(stop.set))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _run(settings: Settings) -> int:
    stop = asyncio.Event()
    app = VechnostApp(settings)
    with _capture_stop_signals(stop):
        starting = asyncio.create_task(app.start(), name="vechnost-start")
        stopping = asyncio.create_task(stop.wait(), name="vechnost-stop-signal")
        try:
            done, _pending = await asyncio.wait(
                {starting, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            if starting in done:
                starting.result()  # raises what start() raised
                await stopping
            else:
                log.info("stop_requested_during_start")
                starting.cancel("stop requested while starting")
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
        finally:
            stopping.cancel()
            await asyncio.shield(app.stop())
    at_risk = app.storage.writes_at_risk if app.storage is not None else 0
    if at_risk:
        # The local store could not keep them (full or read-only disk): say it, and fail.
        log.error(
            "vechnost_stopped_with_writes_at_risk",
            writes=at_risk,
            action="free disk space in the data dir; these writes are lost",
        )
        return 1
    return 0


def command(settings: Settings, args: argparse.Namespace) -> int:
    """``vechnost run``: run until SIGTERM or Ctrl-C; exit 2 for a missing or rejected token."""
    del args
    check_token(settings.token)
    return asyncio.run(_run(settings))
