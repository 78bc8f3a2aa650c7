"""The health HTTP server: ``/healthz``, ``/readyz``, ``/metrics``, ``/status``.

``vechnost run`` starts one on ``HEALTH_HOST:HEALTH_PORT`` (loopback by default).
It knows nothing about the bot or the storage: the composition root hands it a
``snapshot`` callable (the facts ``vechnost status`` prints) and a ``ready``
callable. Every body goes through :func:`vechnost_bot.log.redact` on its way out,
so a secret that slipped into a snapshot field is still masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Final

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vechnost_bot.log import redact
from vechnost_bot.metrics import REGISTRY
from vechnost_bot.ops.listener import Listener
from vechnost_bot.ops.snapshot import section

__all__ = ["HealthServer", "mask_secrets"]

log = structlog.get_logger(__name__)

_MASK: Final = "***"
# Keys whose values are secrets whatever they look like.
_SECRET_KEYS: Final = frozenset(
    {"password", "requirepass", "token", "secret", "bot_token", "telegram_bot_token"}
)

Snapshot = Callable[[], Mapping[str, object]]
Ready = Callable[[], bool]


def mask_secrets(value: object) -> object:
    """A JSON-safe copy of ``value`` with secret keys masked and strings redacted."""
    if isinstance(value, Mapping):
        masked: dict[str, object] = {}
        for key, item in value.items():
            name = str(key)
            if name.lower() in _SECRET_KEYS and item:
                masked[name] = _MASK
            else:
                masked[name] = mask_secrets(item)
        return masked
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _json_response(payload: Mapping[str, object], *, status: int = 200) -> web.Response:
    body = redact(json.dumps(mask_secrets(payload), sort_keys=True, default=str))
    return web.Response(text=body, status=status, content_type="application/json")


class HealthServer(Listener):
    """An aiohttp server for liveness, readiness, Prometheus metrics and status.

    ``port`` 0 binds an ephemeral port; :attr:`port` is the bound one after
    :meth:`start`.
    """

    def __init__(self, host: str, port: int, snapshot: Snapshot, ready: Ready) -> None:
        super().__init__(host, port)
        self._snapshot = snapshot
        self._ready = ready
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        return app

    async def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the port is taken."""
        if self._runner is not None:
            return
        sock = self._bind()
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner
        log.info("health_server_started", host=self._host, port=self._port)

    async def stop(self) -> None:
        """Stop serving; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        log.info("health_server_stopped", host=self._host, port=self._port)

    def _safe_snapshot(self) -> Mapping[str, object] | None:
        # A broken snapshot must not take /readyz down with it.
        try:
            return self._snapshot()
        except Exception as error:  # noqa: BLE001
            log.warning("health_snapshot_failed", error=redact(repr(error)))
            return None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        # An error in the check means "not ready", not a 500.
        try:
            ready = bool(self._ready())
        except Exception as error:  # noqa: BLE001
            log.warning("health_ready_check_failed", error=redact(repr(error)))
            ready = False
        snapshot = self._safe_snapshot() or {}
        storage = section(snapshot, "storage")
        redis = section(snapshot, "redis")
        mode = storage.get("mode")
        body: dict[str, object] = {
            "ready": ready,
            "storage_mode": mode,
            "redis_source": redis.get("source"),
            "redis_state": redis.get("state"),
            "redis_warning": redis.get("warning"),
        }
        if not ready:
            body["status"] = "not_ready"
            return _json_response(body, status=503)
        # Memory mode serves every call, but nothing survives a restart: say so.
        reason = storage.get("degraded_reason")
        body["status"] = "ready" if mode == "redis" and not reason else "degraded"
        if reason:
            body["degraded_reason"] = reason
        elif mode != "redis":
            body["degraded_reason"] = "storage is in memory mode: Redis is not in use"
        return _json_response(body)

    async def _metrics(self, _request: web.Request) -> web.Response:
        text = redact(generate_latest(REGISTRY).decode("utf-8"))
        return web.Response(
            body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _status(self, _request: web.Request) -> web.Response:
        snapshot = self._safe_snapshot()
        if snapshot is None:
            return _json_response(
                {"status": "error", "error": "snapshot failed; see the log"}, status=500
            )
        return _json_response(snapshot)
