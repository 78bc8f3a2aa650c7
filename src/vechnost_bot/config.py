"""Settings from the environment and ``.env``.

Nothing here runs at import time: :func:`load_settings` is called by the CLI
(the edge) and the result is passed down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vechnost_bot.datadir import DataDir
from vechnost_bot.errors import ConfigError
from vechnost_bot.log import add_secret, redact

__all__ = [
    "BotMode",
    "LogFormat",
    "LogLevel",
    "RedisEndpoint",
    "SentinelTarget",
    "Settings",
    "TlsOptions",
    "default_data_dir",
    "load_settings",
    "parse_redis_url",
    "parse_sentinels",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "console", "json"]
BotMode = Literal["polling", "webhook"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
# What redis-server accepts for maxmemory: a number with an optional unit (1gb, 512mb, 100k).
_MEMORY_RE = re.compile(r"(?i)^\d+(?:[kmg]b?|b)?$")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# What Telegram's setWebhook accepts as secret_token.
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


TlsCheck = Literal["required", "optional", "none"]
_TLS_CHECKS: tuple[TlsCheck, ...] = ("required", "optional", "none")
_TLS_PATHS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_TLS_PARAMS = (*_TLS_PATHS, "ssl_cert_reqs", "ssl_check_hostname")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How a ``rediss://`` server is checked: ``REDIS_URL``'s ``ssl_*`` query parameters,
    named as redis-py names them. ``ca_certs``: the CA file to trust (else the system's);
    ``certfile`` and ``keyfile``: a client certificate (``tls-auth-clients yes``)."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cert_reqs: TlsCheck = "required"
    check_hostname: bool = True

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py's connection options for a TLS connection with these checks."""
        return {
            "ssl": True,
            "ssl_ca_certs": self.ca_certs,
            "ssl_certfile": self.certfile,
            "ssl_keyfile": self.keyfile,
            "ssl_cert_reqs": self.cert_reqs,
            "ssl_check_hostname": self.check_hostname and self.cert_reqs != "none",
        }


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where the sentinels are and which master they watch (``REDIS_SENTINELS``,
    ``REDIS_SENTINEL_MASTER``); the sentinels' own password never shows in repr.
    ``tls``: how the sentinels are reached over TLS (None: plain TCP)."""

    addresses: tuple[tuple[str, int], ...]
    master: str
    password: str | None = field(default=None, repr=False)
    tls: TlsOptions | None = None

    @property
    def hosts(self) -> str:
        """``host:port,host:port`` (IPv6 in brackets), as REDIS_SENTINELS spells it."""
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses)

    @property
    def where(self) -> str:
        """``master@host:port,host:port``, for messages."""
        return f"{self.master}@{self.hosts}"


@dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """Where a Redis server is: TCP ``host:port`` or a unix socket ``socket_path``.

    ``password`` never shows in repr or logs. Built once from ``REDIS_URL`` by
    :func:`parse_redis_url` (``Settings.redis_target``), or by the lifecycle for a
    server it started; every consumer (lifecycle, storage, CLI, doctor) takes this.
    """

    host: str = ""
    port: int = 0
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    tls: bool = False
    tls_options: TlsOptions = TlsOptions()
    """How a TLS server is checked (used only when ``tls``)."""
    socket_path: str | None = None
    sentinel: SentinelTarget | None = None
    """Set: the master is whichever server these sentinels name (host and port unused)."""

    def tls_kwargs(self) -> dict[str, Any]:
        """redis-py's TLS connection options for this server; empty without TLS."""
        return self.tls_options.client_kwargs() if self.tls else {}

    @property
    def is_unix(self) -> bool:
        """True for a unix socket endpoint."""
        return self.socket_path is not None

    @property
    def is_loopback(self) -> bool:
        """True when the server is on this host (loopback TCP or a unix socket)."""
        return self.is_unix or self.host in _LOOPBACK_HOSTS or self.host.startswith("127.")

    @property
    def auto_start_can_serve(self) -> bool:
        """True when an auto-started server could be this endpoint: loopback TCP, no
        password, no TLS (the default ``redis://localhost:6379/0`` is). Any other URL
        names an external server explicitly; auto-start never stands in for it."""
        return (
            not self.is_unix
            and (self.host == "localhost" or self.host.startswith("127."))
            and self.password is None
            and not self.tls
        )

    @property
    def where(self) -> str:
        """``host:port``, ``unix:<path>`` or ``sentinel:<master>@<sentinels>``, for messages."""
        if self.sentinel is not None:
            return f"sentinel:{self.sentinel.where}"
        if self.socket_path is not None:
            return f"unix:{self.socket_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, *, redacted: bool = True) -> str:
        """A ``redis://`` (or ``unix://``) URL; the password masked unless ``redacted=False``."""
        auth = ""
        if self.password is not None:
            secret = "***" if redacted else quote(self.password, safe="")
            auth = f"{quote(self.username or '', safe='')}:{secret}@"
        if self.sentinel is not None:
            # Display only: redis-py has no sentinel URL scheme (the settings are a list).
            return f"sentinel://{auth}{self.sentinel.hosts}/{self.sentinel.master}/{self.db}"
        if self.socket_path is not None:
            return f"unix://{auth}{self.socket_path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.where}/{self.db}"


def parse_redis_url(url: str) -> RedisEndpoint:
    """The one parser of ``REDIS_URL``; raises ``ValueError`` saying what is wrong.

    ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS, with the
    ``ssl_*`` parameters of :class:`TlsOptions`) and
    ``unix://[[user]:password@]/path/to/socket[?db=N][&password=…]``. A password is
    registered with the log redactor here, so it is masked from the first line on.
    """
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError("must start with redis://, rediss:// or unix://")
    query = parse_qs(parts.query)
    tls_options = _tls_options(query, tls=parts.scheme == "rediss")
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and query.get("password"):
        password = query["password"][0]
    username = unquote(parts.username) if parts.username else None
    add_secret(password)
    if parts.scheme == "unix":
        if not parts.path.startswith("/"):
            raise ValueError("must name the socket's absolute path, e.g. unix:///run/redis.sock")
        db_text = query.get("db", ["0"])[0]
        if not db_text.isdigit():
            raise ValueError("has a database that is not a number, e.g. ?db=0")
        return RedisEndpoint(
            db=int(db_text), password=password or None, username=username, socket_path=parts.path
        )
    if not parts.hostname:
        raise ValueError("must name a host, e.g. redis://localhost:6379/0")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("has a port that is not a number from 1 to 65535")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError("has a database that is not a number, e.g. /0")
    return RedisEndpoint(
        host=parts.hostname,
        port=port or 6379,
        db=int(db) if db else 0,
        password=password or None,
        username=username,
        tls=parts.scheme == "rediss",
        tls_options=tls_options,
    )


def _tls_options(query: dict[str, list[str]], *, tls: bool) -> TlsOptions:
    """The ``ssl_*`` query parameters as :class:`TlsOptions`; a typo, a bad value or a
    parameter on a URL without TLS is refused rather than silently ignored."""
    given = {name: values[-1] for name, values in query.items() if name.startswith("ssl_")}
    if not given:
        return TlsOptions()
    if not tls:
        raise ValueError(f"has {', '.join(sorted(given))} but no TLS: start it with rediss://")
    unknown = sorted(set(given) - set(_TLS_PARAMS))
    if unknown:
        raise ValueError(
            f"has {', '.join(unknown)}: the TLS parameters are {', '.join(_TLS_PARAMS)}"
        )
    check = given.get("ssl_cert_reqs", "required").lower()
    if check not in _TLS_CHECKS:
        raise ValueError(f"has ssl_cert_reqs={check}: it must be required, optional or none")
    hostname = given.get("ssl_check_hostname", "true").lower()
    if hostname not in (*_TRUE, *_FALSE):
        raise ValueError(f"has ssl_check_hostname={hostname}: it must be true or false")
    paths = {name: given[name] or None for name in _TLS_PATHS if name in given}
    return TlsOptions(
        ca_certs=paths.get("ssl_ca_certs"),
        certfile=paths.get("ssl_certfile"),
        keyfile=paths.get("ssl_keyfile"),
        cert_reqs=check,
        check_hostname=hostname in _TRUE,
    )


_SENTINEL_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%]+)\]|(?P<host>[^\s:\[\],]+)):(?P<port>\d+)$")


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``REDIS_SENTINELS``: ``host:port`` entries, comma-separated, an IPv6 address in
    brackets (``[::1]:26379``); raises ``ValueError`` naming the entry that is wrong."""
    found: list[tuple[str, int]] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        match = _SENTINEL_RE.match(entry)
        if match is None:
            raise ValueError(
                f"{entry!r} is not host:port (an IPv6 address goes in brackets: [::1]:26379)"
            )
        port = int(match["port"])
        if not 1 <= port <= 65535:
            raise ValueError(f"{entry!r} has a port that is not a number from 1 to 65535")
        address = (match["v6"] or match["host"], port)
        if address in found:
            raise ValueError(f"{entry!r} is listed twice")
        found.append(address)
    if not found:
        raise ValueError("names no sentinel: host:port,host:port,…")
    return tuple(found)


class _RuleError(ValueError):
    """A rule across settings is broken; ``variable`` is the one to change."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


def default_data_dir() -> Path:
    """The platform's user data dir for Vechnost (Redis data, journal, pid files)."""
    return Path(user_data_dir("vechnost", appauthor=False))


class Settings(BaseSettings):
    """Every knob the program reads, with its environment variable name."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    # Unset: derived from TELEGRAM_API_BASE_URL (".../bot" -> ".../file/bot").
    telegram_file_base_url: str | None = None
    # Retries of a Bot API call after Telegram's 429 (each waits its retry_after first).
    telegram_send_retries: int = Field(default=3, ge=0, le=10)
    # Pace sends to Telegram's limits (1/s per chat after a burst, 20/min per group, 30/s
    # overall). Off only in front of a local stand-in of the Bot API (benchmarks).
    telegram_pacing: bool = True

    log_level: LogLevel = "INFO"
    log_format: LogFormat = "auto"
    log_file: Path | None = None
    # False: with LOG_FILE set, the console shows errors only (deploy.sh runs in background).
    log_console: bool = True

    # repr=False: the URL may hold the password. Use ``redis_target`` (parsed once).
    redis_url: str = Field(default=DEFAULT_REDIS_URL, repr=False)
    redis_auto_start: bool = True
    redis_server_bin: Path | None = None
    redis_data_dir: Path = Field(default_factory=default_data_dir)
    redis_max_memory: str | None = None
    redis_health_check_interval: float = Field(default=5.0, gt=0, le=3600)
    redis_startup_timeout: float = Field(default=10.0, gt=0, le=600)
    redis_max_startup_attempts: int = Field(default=3, ge=1, le=20)

    health_host: str = "127.0.0.1"
    health_port: int = Field(default=8080, ge=0, le=65535)

    rate_limit_updates: int = Field(default=20, ge=1)
    rate_limit_window: float = Field(default=10.0, gt=0)
    # Cards at one level before the bot offers to go a level deeper (docs/game.md).
    pace_cards: int = Field(default=12, ge=1, le=100)

    # Secrets from files (Docker/Compose secrets), and a Redis password kept out of the URL.
    telegram_bot_token_file: Path | None = None
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None

    # --- Redis Sentinel (docs/scaling.md, docs/redis.md) -------------------------------
    # REDIS_SENTINELS set: the master is whichever server these sentinels name, reached
    # through redis-py's Sentinel.master_for. That is an external Redis: REDIS_URL must
    # not name a server (its host and port would be ignored; the master's password is
    # REDIS_PASSWORD / REDIS_PASSWORD_FILE) and auto-start is off (REDIS_AUTO_START=true
    # with it is refused). The sentinels' own password is REDIS_SENTINEL_PASSWORD(_FILE).
    redis_sentinels: str | None = None
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = Field(default=None, repr=False)
    redis_sentinel_password_file: Path | None = None

    @field_validator("redis_sentinels", mode="after")
    @classmethod
    def _check_sentinels(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_sentinels(value)  # raises ValueError naming the bad entry
        return value.strip()

    @field_validator("redis_sentinel_master", mode="after")
    @classmethod
    def _check_sentinel_master(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", value.strip()):
            raise ValueError(
                "must be the name in `sentinel monitor <name> …` (letters, digits, _ . : -)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _sentinel_rules(self) -> Settings:
        """Sentinel means an external Redis: the rules in the comment above."""
        if self.redis_sentinel_password_file is not None and not _secret_text(
            self.redis_sentinel_password
        ):
            self.redis_sentinel_password = SecretStr(
                _read_secret(self.redis_sentinel_password_file)
            )
        add_secret(_secret_text(self.redis_sentinel_password) or None)
        if self.redis_sentinels is None:
            if self.redis_sentinel_master is not None:
                raise _RuleError(
                    "REDIS_SENTINEL_MASTER",
                    "REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not: name the "
                    "sentinels (host:port,host:port,…), or remove REDIS_SENTINEL_MASTER",
                )
            return self
        if self.redis_sentinel_master is None:
            raise _RuleError(
                "REDIS_SENTINELS",
                "REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not: set it to the name "
                "the sentinels monitor (`sentinel monitor <name> …` in sentinel.conf)",
            )
        url = parse_redis_url(self.redis_url)
        if url.is_unix or (url.host, url.port) != ("localhost", 6379):
            raise _RuleError(
                "REDIS_URL",
                f"REDIS_URL names {url.where} while REDIS_SENTINELS is set: with Sentinel the "
                "master's address comes from the sentinels; remove REDIS_URL, or keep only "
                "TLS and the db in it (rediss://localhost:6379/0?ssl_ca_certs=…); the "
                "master's password goes in REDIS_PASSWORD or REDIS_PASSWORD_FILE",
            )
        if self.redis_auto_start and "redis_auto_start" in self.model_fields_set:
            raise _RuleError(
                "REDIS_AUTO_START",
                "REDIS_AUTO_START is true while REDIS_SENTINELS is set: Sentinel means an "
                "external Redis, which the bot never starts; remove REDIS_AUTO_START or set "
                "it to false",
            )
        self.redis_auto_start = False
        return self

    # ==== webhook mode (BOT_MODE, WEBHOOK_*; docs/scaling.md) =========================
    # polling: one process per token (Telegram answers 409 to a second getUpdates).
    # webhook: Telegram pushes to WEBHOOK_URL; any number of replicas behind a balancer.
    bot_mode: BotMode = "polling"
    # The public https URL Telegram posts to (setWebhook's url); its path is served.
    webhook_url: str | None = None
    # setWebhook's secret_token, checked on every request (1-256 of A-Z a-z 0-9 _ -).
    webhook_secret: SecretStr | None = Field(default=None, repr=False)
    webhook_secret_file: Path | None = None
    # Where the webhook server listens (a reverse proxy or the balancer forwards to it).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=0, le=65535)
    # The path served, when a proxy rewrites it; default: WEBHOOK_URL's path.
    webhook_path: str | None = None
    # setWebhook's max_connections: updates in flight at once over every replica.
    webhook_max_connections: int = Field(default=40, ge=1, le=100)
    # Seconds a record read or write retries Redis before the update is answered 503
    # (Retry-After) for Telegram to redeliver; Sentinel failovers take 1.4-2.4 s.
    webhook_retry_budget: float = Field(default=3.0, gt=0, le=30)
    # The longest one update may take before it is answered 503 and redelivered.
    webhook_process_timeout: float = Field(default=10.0, gt=0, le=60)
    # ==== end of webhook mode ========================================================

    @field_validator(
        "telegram_bot_token_file",
        "redis_password_file",
        "redis_sentinel_password_file",
        "webhook_secret_file",
        mode="before",
    )
    @classmethod
    def _readable_secret_file(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        path = Path(str(value))
        try:
            path.read_bytes()
        except OSError as error:
            raise ValueError(f"cannot read {path} ({error.strerror or error})") from None
        return path

    @model_validator(mode="after")
    def _apply_secrets(self) -> Settings:
        """*_FILE fills its variable when that is unset; REDIS_PASSWORD (or its file) goes
        into REDIS_URL URL-encoded, so any character is safe in it."""
        if self.token is None and self.telegram_bot_token_file is not None:
            self.telegram_bot_token = SecretStr(_read_secret(self.telegram_bot_token_file))
        if self.redis_password_file is not None and not _secret_text(self.redis_password):
            self.redis_password = SecretStr(_read_secret(self.redis_password_file))
        password = _secret_text(self.redis_password)
        if password:
            self.redis_url = _with_password(self.redis_url, password)
        if self.webhook_secret_file is not None and not _secret_text(self.webhook_secret):
            self.webhook_secret = SecretStr(_read_secret(self.webhook_secret_file))
        add_secret(self.webhook_secret_text)
        return self

    @model_validator(mode="after")
    def _check_webhook(self) -> Settings:
        """Webhook mode needs where Telegram posts and the secret it sends."""
        if self.bot_mode != "webhook":
            return self
        if not self.webhook_url:
            raise ValueError(
                "WEBHOOK_URL: is required when BOT_MODE=webhook: the public https URL that "
                "Telegram posts updates to, e.g. https://bot.example.com/telegram/webhook"
            )
        if not self.webhook_secret_text:
            raise ValueError(
                "WEBHOOK_SECRET: is required (or WEBHOOK_SECRET_FILE) when BOT_MODE=webhook: "
                "1-256 characters of A-Z, a-z, 0-9, _ and -, e.g. from "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if not _WEBHOOK_SECRET_RE.fullmatch(self.webhook_secret_text):
            raise ValueError(
                "WEBHOOK_SECRET: must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "(what Telegram's setWebhook accepts)"
            )
        return self

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(
                "must be an https:// URL with a host (http:// only for a local Bot API server)"
            )
        return value.strip()

    @field_validator("webhook_path")
    @classmethod
    def _check_webhook_path(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith("/"):
            raise ValueError("must start with /, e.g. /telegram/webhook")
        return value

    @property
    def webhook_secret_text(self) -> str | None:
        """The webhook secret in clear (WEBHOOK_SECRET or its file), or None."""
        return _secret_text(self.webhook_secret) or None

    @property
    def webhook_listen_path(self) -> str:
        """The path the webhook server serves: WEBHOOK_PATH, else WEBHOOK_URL's path."""
        if self.webhook_path:
            return self.webhook_path
        return urlsplit(self.webhook_url or "").path or "/"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parse_redis_url(value)  # raises ValueError: one line naming REDIS_URL
        return value

    @field_validator("redis_data_dir", mode="after")
    @classmethod
    def _resolve_data_dir(cls, value: Path) -> Path:
        # Resolved once, here: `~`, a path relative to the working dir (where .env is
        # read), symlinks and `..`. Redis's files, the log and the local store all use it.
        if any(ord(char) < 32 for char in str(value)):
            # redis.conf is line-based: a newline in `dir` would be a second directive.
            raise ValueError("must not contain control characters such as a newline")
        return value.expanduser().resolve()

    @field_validator("redis_max_memory", mode="after")
    @classmethod
    def _check_max_memory(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not _MEMORY_RE.match(value):
            raise ValueError("must be a memory size: a number with an optional unit, e.g. 256mb")
        return value

    @cached_property
    def redis_target(self) -> RedisEndpoint:
        """``REDIS_URL`` as a typed endpoint (TCP or unix socket), parsed once; with
        ``REDIS_SENTINELS`` the master those sentinels name (credentials and db from
        REDIS_PASSWORD and REDIS_URL). A ``rediss://`` REDIS_URL means TLS, with its
        ``ssl_*`` parameters, to the master and to the sentinels alike."""
        endpoint = parse_redis_url(self.redis_url)
        if self.redis_sentinels is None or self.redis_sentinel_master is None:
            return endpoint
        sentinel = SentinelTarget(
            addresses=parse_sentinels(self.redis_sentinels),
            master=self.redis_sentinel_master,
            password=_secret_text(self.redis_sentinel_password) or None,
            tls=endpoint.tls_options if endpoint.tls else None,
        )
        return RedisEndpoint(
            db=endpoint.db,
            password=endpoint.password,
            username=endpoint.username,
            tls=endpoint.tls,
            tls_options=endpoint.tls_options,
            sentinel=sentinel,
        )

    @cached_property
    def data_dir(self) -> DataDir:
        """The data dir (resolved once) and every file in it."""
        return DataDir(self.redis_data_dir)

    @property
    def file_base_url(self) -> str:
        """Where files are downloaded: TELEGRAM_FILE_BASE_URL, or next to the API URL."""
        if self.telegram_file_base_url:
            return self.telegram_file_base_url
        api = self.telegram_api_base_url.rstrip("/")
        if api.endswith("/bot"):
            return f"{api.removesuffix('/bot')}/file/bot"
        return f"{api}/file"

    @property
    def token(self) -> str | None:
        """The bot token in clear, or None when unset or blank."""
        if self.telegram_bot_token is None:
            return None
        raw = self.telegram_bot_token.get_secret_value().strip()
        return raw or None


def _secret_text(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""


def _read_secret(path: Path) -> str:
    """A secret file's text without the trailing newline editors and ``echo`` add."""
    return path.read_text(encoding="utf-8").strip()


def _with_password(url: str, password: str) -> str:
    """``url`` with its password replaced by ``password``, percent-encoded."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return url  # a socket URL carries its password as a query parameter: left as given
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        return message  # a check across settings: its message names them
    field = str(first["loc"][0])
    variable = field.upper()
    value = first.get("input")
    shown = "" if "token" in field or value is None else f" (got {redact(str(value))[:80]!r})"
    return f"{variable}: {message}{shown}"


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad value raises :class:`ConfigError` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else None
        if variable is None:
            variable = getattr(first.get("ctx", {}).get("error"), "variable", None)
        raise ConfigError(f"invalid setting {_describe(error)}", variable=variable) from None
