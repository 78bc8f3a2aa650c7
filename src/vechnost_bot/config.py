"""Settings from the environment and ``.env``.

Nothing here runs at import time: :func:`load_settings` is called by the CLI
(the edge) and the result is passed down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vechnost_bot.errors import ConfigError
from vechnost_bot.log import redact

__all__ = ["LogFormat", "LogLevel", "Settings", "default_data_dir", "load_settings"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["auto", "console", "json"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")


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

    redis_url: str = "redis://localhost:6379/0"
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
        parts = urlsplit(value)
        if parts.scheme not in _REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        if parts.scheme != "unix":
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
        return value

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


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    variable = field.upper()
    message = first["msg"].removeprefix("Value error, ")
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
        raise ConfigError(f"invalid setting {_describe(error)}", variable=variable) from None
