"""The webhook server: Telegram pushes each update here, and gets its answer only after
the update was processed.

Telegram's Bot API server sends a chat's next update only after the previous one got a
2xx, and redelivers on any other answer, after our ``Retry-After``, for up to a day.
So answering *after* processing keeps each chat's order even when several replicas
share the webhook behind a load balancer; answering 200 at once (a queue behind the
handler) would throw that order away.

Per update, in this order:

* the ``X-Telegram-Bot-Api-Secret-Token`` header is compared in constant time (403);
* a draining server answers 503 so that Telegram redelivers to another replica;
* the body is read up to ``max_body_bytes`` (413 beyond);
* the **gate** (any object with the storage contract's ``cache_add`` / ``cache_get`` /
  ``cache_set``: SET NX PX in Redis) is claimed for ``update_id`` with a lease a little
  longer than ``process_timeout`` (or, with ``lease=``, a short lease renewed every third
  of it while the update runs, so that a replica that dies frees it within ``lease``).
  A redelivery of an update that is marked done is answered 200 without processing it
  again; one whose lease another replica holds gets
  503, and is processed once the lease is released or expires;
* ``process(update)`` runs within ``process_timeout``. It raises
  :class:`UpdateDeferredError` when the storage is unavailable: the lease is released
  and the answer is 503 with ``Retry-After``. On success the update is marked done and
  answered 200. Past ``process_timeout`` it is cancelled; processing that has not ended
  ``cancel_grace`` later (a cancellation swallowed somewhere below) is left running,
  logged as ``webhook_update_stuck`` with where it waits, and the update answered 503
  all the same: its lease is released, never renewed on, so the redelivery can be
  processed elsewhere instead of the chat waiting for ever.

What the gate cannot know: a replica killed after ``process`` changed the storage but
before it marked the update done leaves only its lease; when that expires the update is
processed again. Effects that must happen once across that window need their own
idempotence in the storage (``incr_once`` for counters, the update id in the session).

``/healthz`` (liveness) never touches the gate or Redis; ``/readyz`` means "started and
not draining"; ``/metrics`` is the program's Prometheus registry.
:meth:`WebhookServer.stop` drains: it stops being ready, waits (bounded) for the
requests in flight, then stops the HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import re
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, Protocol

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from vechnost_bot.errors import ConfigError, VechnostError
from vechnost_bot.log import redact
from vechnost_bot.metrics import REGISTRY
from vechnost_bot.ops.listener import Listener
from vechnost_bot.service import Service

__all__ = [
    "SECRET_HEADER",
    "AsgiServer",
    "Process",
    "UpdateDeferredError",
    "UpdateGate",
    "WebhookServer",
]

log = structlog.get_logger(__name__)

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# What Telegram's setWebhook accepts as secret_token.
_SECRET_FORMAT: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
_START_TIMEOUT: Final = 10.0
_CLAIMED: Final = b"claimed"
_DONE: Final = b"done"

Process = Callable[[dict[str, Any]], Awaitable[None]]


class UpdateGate(Protocol):
    """The part of the storage contract the dedup gate uses (``Storage`` satisfies it)."""

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool: ...

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None: ...


class UpdateDeferredError(VechnostError):
    """Raised by ``process``: the update cannot be handled now (the storage is unavailable).

    The server answers 503 with ``Retry-After`` and Telegram redelivers the update, in
    order, so the player sees a delay instead of a forked game.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"update deferred: {reason}; Telegram will redeliver it")
        self.reason = reason
        self.retry_after = retry_after


class _Server(uvicorn.Server):
    # The composition root owns SIGTERM/SIGINT; uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AsgiServer(Listener):
    """An ASGI app served by uvicorn on ``host:port`` (0 = an ephemeral port).

    The socket is bound in :meth:`start`, so a taken port raises ``OSError`` there.
    :meth:`stop` closes the listener, lets open requests finish for ``stop_timeout``
    seconds, then cancels what is left.
    """

    def __init__(self, app: ASGIApp, host: str, port: int, *, stop_timeout: float = 5.0) -> None:
        super().__init__(host, port)
        self._app = app
        self._stop_timeout = stop_timeout
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Bind, then serve; return once uvicorn accepts connections (within 10 s)."""
        if self._task is not None:
            return
        sock = self._bind()
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            # Longer than a balancer's idle timeout (60 s is usual): the side that closes an
            # idle connection should be the client, or a request sent just as the server
            # closes it is lost in flight (uvicorn's default is 5 s).
            timeout_keep_alive=75,
            timeout_graceful_shutdown=max(1, math.ceil(self._stop_timeout)),
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="asgi-server")
        self._server, self._task, self._socket = server, task, sock
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while not server.started:
            if task.done() or loop.time() > deadline:
                await self.stop()
                raise OSError(f"the HTTP server on {self.url} did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving (bounded); safe twice."""
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = self._socket = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            # uvicorn waits up to timeout_graceful_shutdown itself; this is the outer bound.
            await asyncio.wait_for(asyncio.shield(task), self._stop_timeout + 2.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except (SystemExit, Exception) as error:  # noqa: BLE001 - uvicorn sys.exit()s on failure
            log.warning("asgi_server_failed", url=self.url, error=_describe(error))
        finally:
            if sock is not None:
                sock.close()


class WebhookServer(Service):
    """Telegram's webhook endpoint plus ``/healthz`` and ``/readyz`` on one port.

    ``path`` is where Telegram posts (``setWebhook``'s URL path), ``secret`` the
    ``secret_token`` given to ``setWebhook``. ``gate`` (None = no dedup) is normally
    the storage. Every bound is a keyword argument with a default that suits Telegram.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str,
        secret: str,
        process: Process,
        gate: UpdateGate | None,
        process_timeout: float = 10.0,
        retry_after: float = 1.0,
        max_body_bytes: int = 1 << 20,
        drain_timeout: float = 10.0,
        lease_margin: float = 2.0,
        lease: float | None = None,
        cancel_grace: float = 1.0,
        done_ttl: float = 3600.0,
        key_prefix: str = "webhook:update",
    ) -> None:
        if not _SECRET_FORMAT.fullmatch(secret):
            raise ConfigError(
                "the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "(what Telegram's setWebhook accepts)",
                variable="WEBHOOK_SECRET",
            )
        if not path.startswith("/"):
            raise ConfigError(f"the webhook path {path!r} must start with /")
        self._path = path
        self._secret = secret.encode()
        self._process = process
        self._gate = gate
        self._process_timeout = process_timeout
        self._retry_after = retry_after
        self._max_body = max_body_bytes
        self._drain_timeout = drain_timeout
        # None: one lease for the longest processing. A number: a short lease renewed
        # while the update runs, so a replica that dies frees its updates within it.
        self._lease = process_timeout + lease_margin if lease is None else lease
        self._renew = lease is not None
        self._cancel_grace = cancel_grace
        self._stuck: set[asyncio.Task[None]] = set()  # kept alive until they end
        self._done_ttl = done_ttl
        self._key_prefix = key_prefix
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False
        self._draining = False
        app = Starlette(
            routes=[
                Route(path, self._update, methods=["POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )
        self._http = AsgiServer(app, host, port, stop_timeout=drain_timeout)

    # -- facts ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        """Where Telegram (or a balancer in front) posts updates."""
        return self._http.url + self._path

    @property
    def ready(self) -> bool:
        """Started and not draining: what ``/readyz`` answers."""
        return self._started and not self._draining

    @property
    def in_flight(self) -> int:
        """Update requests being handled right now."""
        return self._in_flight

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the port is taken."""
        if self._started:
            return
        self._draining = False
        await self._http.start()
        self._started = True
        log.info("webhook_server_started", port=self.port, path=self._path)

    async def stop(self) -> None:
        """Stop being ready, wait up to ``drain_timeout`` for requests in flight, stop."""
        if not self._started:
            return
        self._draining = True
        log.info("webhook_draining", in_flight=self._in_flight)
        try:
            await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
        except TimeoutError:
            log.warning(
                "webhook_drain_timeout", in_flight=self._in_flight, waited=self._drain_timeout
            )
        await self._http.stop()
        for task in list(self._stuck):  # one more try; they end with the process anyway
            task.cancel()
        self._started = False
        log.info("webhook_server_stopped", port=self.port)

    # -- routes --------------------------------------------------------------------------
    async def _healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def _readyz(self, _request: Request) -> Response:
        body = {"ready": self.ready, "draining": self._draining, "in_flight": self._in_flight}
        return JSONResponse(body, status_code=200 if self.ready else 503)

    async def _metrics(self, _request: Request) -> Response:
        text = redact(generate_latest(REGISTRY).decode("utf-8"))
        return Response(text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _update(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook_secret_mismatch", client=_client(request))
            return Response(status_code=403)
        if self._draining:
            return self._later(self._retry_after)
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._receive(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _receive(self, request: Request) -> Response:
        body = await self._read_body(request)
        if body is None:
            log.warning("webhook_body_too_large", limit=self._max_body)
            return Response(status_code=413)
        try:
            update = json.loads(body)
            update_id = int(update["update_id"])
        except (ValueError, TypeError, KeyError):
            log.warning("webhook_body_invalid", size=len(body))
            return Response(status_code=400)
        return await self._handle(update_id, update)

    async def _read_body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                return None
        return bytes(body)

    # -- one update ----------------------------------------------------------------------
    async def _handle(self, update_id: int, update: dict[str, Any]) -> Response:
        key = f"{self._key_prefix}:{update_id}"
        if self._gate is not None:
            refusal = await self._claim(key, update_id)
            if refusal is not None:
                return refusal
        renewing = self._renewing(key, update_id)
        try:
            later = await self._outcome(update_id, update)
        finally:
            # Stopped before the lease is released or marked done, so that a late renewal
            # never overwrites either.
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
        if later is not None:
            await self._release(key)
            return later
        await self._mark_done(key, update_id)
        return Response(status_code=200)

    async def _outcome(self, update_id: int, update: dict[str, Any]) -> Response | None:
        """Process the update: None when it is done, else the 503 to answer."""
        try:
            await self._run_bounded(update_id, update)
        except UpdateDeferredError as error:
            log.info("webhook_update_deferred", update_id=update_id, reason=error.reason)
            return self._later(error.retry_after or self._retry_after)
        except TimeoutError:
            log.warning(
                "webhook_update_timeout", update_id=update_id, timeout=self._process_timeout
            )
            return self._later(self._retry_after)
        except Exception:
            # A bug in one update must not hold its chat for the day Telegram keeps
            # retrying: it is logged, marked done and answered 200, as polling would.
            log.exception("webhook_update_failed", update_id=update_id)
        return None

    async def _run_bounded(self, update_id: int, update: dict[str, Any]) -> None:
        """``process(update)`` within ``process_timeout``, else ``TimeoutError``: like
        ``asyncio.wait_for``, except that it waits only ``cancel_grace`` for a cancelled
        processing to end (``wait_for`` waits for ever)."""
        task = asyncio.ensure_future(self._process(update))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._process_timeout)
            if not done:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=self._cancel_grace)
        except asyncio.CancelledError:
            task.cancel()  # the request itself was cancelled: so is its processing
            raise
        if not done:
            self._leave_stuck(update_id, task)
            raise TimeoutError
        if task.cancelled():
            raise TimeoutError
        task.result()

    def _leave_stuck(self, update_id: int, task: asyncio.Task[None]) -> None:
        log.error(
            "webhook_update_stuck",
            update_id=update_id,
            grace=self._cancel_grace,
            waiting_in=_where_it_waits(task),
        )
        self._stuck.add(task)

        def ended(finished: asyncio.Task[None]) -> None:
            self._stuck.discard(finished)
            log.warning("webhook_stuck_update_ended", update_id=update_id)
            if not finished.cancelled():
                finished.exception()  # retrieved: it is not logged as never retrieved

        task.add_done_callback(ended)

    def _renewing(self, key: str, update_id: int) -> asyncio.Task[None] | None:
        if self._gate is None or not self._renew:
            return None
        return asyncio.create_task(self._renew_lease(key, update_id), name=f"lease-{update_id}")

    async def _renew_lease(self, key: str, update_id: int) -> None:
        assert self._gate is not None
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._gate.cache_set(key, _CLAIMED, self._lease)
            except Exception as error:  # noqa: BLE001 - the next renewal tries again
                log.warning("webhook_lease_renewal_failed", update_id=update_id,
                            error=_describe(error))  # fmt: skip

    async def _claim(self, key: str, update_id: int) -> Response | None:
        """None when this replica now holds the update's lease, else the answer to give."""
        assert self._gate is not None
        try:
            if await self._gate.cache_add(key, _CLAIMED, self._lease):
                return None
            state = await self._gate.cache_get(key)
        except Exception as error:  # noqa: BLE001 - any gate failure means "cannot dedup now"
            log.warning("webhook_gate_unavailable", update_id=update_id, error=_describe(error))
            return self._later(self._retry_after)
        if state == _DONE:
            log.info("webhook_update_duplicate", update_id=update_id)
            return Response(status_code=200)
        # Another replica is on it (or died on it): ask again once its lease may be gone.
        log.info("webhook_update_claimed_elsewhere", update_id=update_id)
        return self._later(self._retry_after)

    async def _release(self, key: str) -> None:
        if self._gate is None:
            return
        try:
            await self._gate.cache_set(key, b"", 0)  # a non-positive ttl removes the entry
        except Exception as error:  # noqa: BLE001 - the lease then simply expires
            log.warning("webhook_gate_release_failed", key=key, error=_describe(error))

    async def _mark_done(self, key: str, update_id: int) -> None:
        if self._gate is None:
            return
        try:
            await self._gate.cache_set(key, _DONE, self._done_ttl)
        except Exception as error:  # noqa: BLE001 - processed already: still answer 200
            log.warning("webhook_gate_mark_failed", update_id=update_id, error=_describe(error))

    @staticmethod
    def _later(retry_after: float) -> Response:
        # Telegram reads Retry-After as whole seconds.
        seconds = max(1, math.ceil(retry_after))
        return Response(status_code=503, headers={"Retry-After": str(seconds)})


def _client(request: Request) -> str | None:
    return None if request.client is None else request.client.host


def _where_it_waits(task: asyncio.Task[Any]) -> str:
    """The coroutine frames ``task`` is suspended in, outermost first: ``fn (file:line)``."""
    frames = task.get_stack(limit=30)
    return " > ".join(
        f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})"
        for frame in frames
    )


def _describe(error: BaseException) -> str:
    # repr() of a redis-py error hides its message (NOREPLICAS, READONLY …).
    return f"{type(error).__name__}: {error}"
