"""The composition root: ``vechnost run``.

Builds and connects everything, in order: the health server, the storage (serving
from the local store), the Telegram bot (python-telegram-bot's manual lifecycle:
initialize → start → polling), and then, in the background, the Redis lifecycle, which
the storage follows back to Redis when it is ready: start-up never waits on Redis.
SIGTERM or Ctrl-C sets an event; the pieces then stop in reverse order, each within its
own time limit.

``BOT_MODE=webhook`` (docs/scaling.md): the Application has no updater; the webhook
server (``bot/webhook.py``) hands each pushed update to the Application through the
per-chat processor and answers only once it was processed. The storage fails closed
(``storage/failclosed.py``): an update the storage cannot serve within its budget is
answered 503 with Retry-After, and Telegram redelivers it. ``setWebhook`` runs only
when what Telegram reports, and the digest of the secret kept in Redis, differ from the
settings; the webhook is never deleted on stop (that would cut off every replica).
On SIGTERM the webhook server stops being ready, finishes the updates in flight, and
only then do the bot and the storage stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
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
from telegram.ext import Application, ApplicationBuilder, ApplicationHandlerStop
from telegram.request import HTTPXRequest

from vechnost_bot import __version__
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.delivery import AiohttpRequest, SendGuard
from vechnost_bot.bot.handlers import GameBot, set_commands
from vechnost_bot.bot.polling import ALLOWED_UPDATES, TolerantBot, parse_updates
from vechnost_bot.bot.processor import ChatOrderedProcessor
from vechnost_bot.bot.ratelimit import SharedLimit
from vechnost_bot.bot.webhook import UpdateDeferredError, WebhookServer
from vechnost_bot.config import Settings
from vechnost_bot.errors import ConfigError, TelegramTokenError
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.ops.health import HealthServer
from vechnost_bot.ops.snapshot import OverallStatus, RedisSnapshot, Snapshot, TelegramSnapshot
from vechnost_bot.redis.autostart import RedisAutoStartManager
from vechnost_bot.redis.probe import refuse_cluster
from vechnost_bot.service import backoff
from vechnost_bot.storage.failclosed import (
    FailClosedStorage,
    UpdateRandom,
    current_scope,
    update_scope,
)
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
    "webhook": 30.0,
    "health": 5.0,
    "polling": 15.0,
    "bot": 10.0,
    "bot_shutdown": 10.0,
    "storage": 10.0,
    "redis": 20.0,
}
# Where the digest of the webhook's settings (secret included) is kept in Redis: the
# secret cannot be read back from getWebhookInfo.
_WEBHOOK_DIGEST_KEY: Final = "webhook:settings"
_WEBHOOK_DIGEST_TTL: Final = 30 * 24 * 3600.0
# How long the webhook registration waits for Redis (to read that digest) before it
# calls setWebhook anyway: unknown means set.
_WEBHOOK_REDIS_WAIT: Final = 10.0
# The update-id lease, renewed while an update runs: a replica that dies (SIGKILL, OOM)
# holds its chats' updates this long at most before another replica takes them.
_WEBHOOK_LEASE: Final = 3.0


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
    webhook: bool = False,
) -> AnyApplication:
    """A python-telegram-bot Application with the game's handlers, pointed at ``base_url``.

    Updates of one chat run in order, chats concurrently (:class:`ChatOrderedProcessor`);
    getUpdates survives updates it cannot parse (:class:`TolerantBot`); every call goes
    through :class:`SendGuard` (429 honoured per chat, Telegram's limits kept).
    ``webhook``: no updater (updates come from the webhook server), and a deferred update
    (:class:`UpdateDeferredError`) stops its handlers without the game's apology.
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
    builder = (
        ApplicationBuilder().bot(bot).concurrent_updates(ChatOrderedProcessor(concurrent_updates))
    )
    if webhook:
        builder = builder.updater(None)
    application: AnyApplication = builder.build()
    if webhook:
        # Before the game's own error handler, which would apologise to the player.
        application.add_error_handler(_stop_on_deferral)
    game.install(application)
    return application


async def _stop_on_deferral(update: object, context: Any) -> None:
    """An update the storage could not serve: no further handler, no apology; the
    webhook answers 503 and Telegram redelivers it."""
    del update
    error = context.error
    if isinstance(error, UpdateDeferredError):
        scope = current_scope()
        if scope is not None and scope.deferred is None:
            scope.deferred = error
        raise ApplicationHandlerStop


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
        self.webhook: WebhookServer | None = None
        self._webhook_registration: asyncio.Task[None] | None = None
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

    @property
    def receiving(self) -> bool:
        """True while updates come in: polling, or the webhook server ready."""
        return self.polling or (self.webhook is not None and self.webhook.ready)

    def ready(self) -> bool:
        """Ready for traffic: receiving updates (polling, or the webhook started and not
        draining), and the storage started. The storage's state is information only: in
        webhook mode a shared Redis outage must not pull every replica out at once."""
        return self.receiving and self._storage_started

    def _telegram(self) -> TelegramSnapshot:
        if self.polling:
            state = "polling"
        elif self.webhook is not None and self.webhook.ready:
            state = "webhook"
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
        if not self.receiving:
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
        if not settings.redis_target.auto_start_can_serve:
            await refuse_cluster(settings.redis_target)  # exit 2: Cluster is not supported
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
        webhook_mode = settings.bot_mode == "webhook"
        if webhook_mode:
            # Replicas share one Redis: records fail closed instead of forking per replica.
            self.storage = FailClosedStorage(
                budget=settings.webhook_retry_budget,
                client_factory=connect_redis,
                local_dir=settings.data_dir.local_store_dir,
                legacy_journal=settings.data_dir.journal,
                on_connection_lost=self.lifecycle.wake,
                # Counters and caches follow Redis back within a second or two.
                probe_initial=0.2,
                probe_max=2.0,
            )
        else:
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
            # In webhook mode, processing an update again (a redelivery) draws the same
            # card; outside an update scope it is an ordinary random.Random.
            rng=UpdateRandom(),
            # Replicas share the records: every read an answer is made from goes to Redis.
            sole_writer=not webhook_mode,
            # ... and the per-user window, counted in Redis by update id.
            shared_limit=(
                SharedLimit(self.storage, settings.rate_limit_updates, settings.rate_limit_window)
                if webhook_mode
                else None
            ),
        )
        self.application = build_application(
            token,
            self.game,
            base_url=settings.telegram_api_base_url,
            base_file_url=settings.file_base_url,
            send_retries=settings.telegram_send_retries,
            pacing=settings.telegram_pacing,
            webhook=webhook_mode,
        )
        await self._initialize_bot(self.application)
        await self.application.start()
        self._bot_started = True
        if webhook_mode:
            await self._start_webhook(token)
        else:
            await start_polling(self.application, error_callback=self._on_polling_error)
            log.info("bot_polling", username=self.application.bot.username)
        self._redis_start = asyncio.create_task(
            self._start_redis(self.lifecycle, self.storage), name="vechnost-redis-start"
        )
        if webhook_mode:
            self._webhook_registration = asyncio.create_task(
                self._register_webhook(token), name="vechnost-webhook-registration"
            )
        try:
            await set_commands(self.application)
        except TelegramError as error:
            log.warning("set_commands_failed", error=str(error))

        log.info("vechnost_started", version=__version__, health_port=self.health.port)

    # -- webhook mode ------------------------------------------------------------------
    async def _start_webhook(self, token: str) -> None:
        """Serve the webhook (with /healthz, /readyz, /metrics) on WEBHOOK_HOST:PORT."""
        settings = self.settings
        storage = self.storage
        assert isinstance(storage, FailClosedStorage)
        secret = settings.webhook_secret_text
        assert secret is not None  # Settings refuses webhook mode without one
        # The same on every replica (derived from the token), so a redelivered update
        # draws the same card wherever it lands; unknown to anyone without the token.
        seed = hashlib.sha256(b"vechnost-update-draws:" + token.encode()).digest()

        async def process(raw: dict[str, Any]) -> None:
            await self._process_update(raw, seed)

        self.webhook = WebhookServer(
            host=settings.webhook_host,
            port=settings.webhook_port,
            path=settings.webhook_listen_path,
            secret=secret,
            process=process,
            gate=storage.gate,
            process_timeout=settings.webhook_process_timeout,
            lease=_WEBHOOK_LEASE,
            drain_timeout=_STOP_TIMEOUTS["webhook"] / 2,
        )
        try:
            await self.webhook.start()
        except OSError as error:
            raise ConfigError(
                f"WEBHOOK_PORT {settings.webhook_port} on {settings.webhook_host} cannot be "
                f"bound ({error.strerror or error}); choose a free port",
                variable="WEBHOOK_PORT",
            ) from None
        log.info(
            "bot_webhook_serving",
            username=self.application.bot.username if self.application else None,
            port=self.webhook.port,
            path=settings.webhook_listen_path,
        )

    async def _process_update(self, raw: dict[str, Any], seed: bytes) -> None:
        """One pushed update, through the per-chat processor, within its update scope;
        raises :class:`UpdateDeferredError` when the storage could not serve it."""
        app = self.application
        assert app is not None
        parsed = parse_updates([raw], app.bot)
        if not parsed:
            return
        update = parsed[0]
        with update_scope(update.update_id, seed=seed) as scope:
            await app.update_processor.process_update(update, app.process_update(update))
        if scope.deferred is not None:
            raise scope.deferred

    def _webhook_digest(self, token: str) -> bytes:
        """What the registered webhook must match: URL, secret, update types, connections."""
        settings = self.settings
        text = "\n".join(
            [
                settings.webhook_url or "",
                settings.webhook_secret_text or "",
                ",".join(sorted(ALLOWED_UPDATES)),
                str(settings.webhook_max_connections),
            ]
        )
        return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest().encode()

    async def _register_webhook(self, token: str) -> None:
        """setWebhook unless getWebhookInfo and the digest in Redis say it is set as
        configured; retried with backoff until Telegram answers."""
        app, storage, settings = self.application, self.storage, self.settings
        assert app is not None
        assert storage is not None
        assert settings.webhook_url
        for _ in range(int(_WEBHOOK_REDIS_WAIT / 0.1)):
            if storage.mode == "redis":
                break
            await asyncio.sleep(0.1)
        digest = self._webhook_digest(token)
        attempt = 0
        while True:
            attempt += 1
            try:
                info = await app.bot.get_webhook_info()
                known = await storage.cache_get(_WEBHOOK_DIGEST_KEY)
                same = (
                    info.url == settings.webhook_url
                    and sorted(info.allowed_updates or ()) == sorted(ALLOWED_UPDATES)
                    and info.max_connections == settings.webhook_max_connections
                )
                if same and known == digest:
                    log.info("webhook_unchanged", url=settings.webhook_url)
                    return
                await app.bot.set_webhook(
                    url=settings.webhook_url,
                    secret_token=settings.webhook_secret_text,
                    allowed_updates=list(ALLOWED_UPDATES),
                    max_connections=settings.webhook_max_connections,
                    drop_pending_updates=False,
                )
                await storage.cache_set(_WEBHOOK_DIGEST_KEY, digest, _WEBHOOK_DIGEST_TTL)
            except TelegramError as error:
                wait = backoff(attempt, base=1.0, cap=_RETRY_MAX)
                log.warning("webhook_set_failed", error=str(error), retry_in=round(wait, 2))
                self._telegram_error = f"{type(error).__name__}: {error}"
                self._telegram_error_at = time.time()
                await asyncio.sleep(wait)
            else:
                log.info(
                    "webhook_set",
                    url=settings.webhook_url,
                    reason="getWebhookInfo differs" if not same else "secret not known to match",
                )
                return

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
        if self.webhook is not None:
            # Not ready first, then the updates in flight finish (bounded); never
            # deleteWebhook: the other replicas still serve it.
            await _bounded("webhook", self.webhook.stop(), _STOP_TIMEOUTS["webhook"])
        registering = self._webhook_registration
        if registering is not None and not registering.done():
            registering.cancel("vechnost stopping")
            await asyncio.wait({registering}, timeout=1.0)
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
