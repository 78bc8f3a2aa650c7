"""What the bot's HTTP servers share: the address they bind, the bound port, their URL.

The health server (aiohttp) and the webhook's server (uvicorn) bind their socket here,
so that a taken port raises ``OSError`` in ``start()`` the same way for both, and port 0
becomes the port the kernel chose.
"""

from __future__ import annotations

import socket

from vechnost_bot.service import Service

__all__ = ["Listener"]


class Listener(Service):
    """A server on ``host:port`` (``port`` 0: an ephemeral port)."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port

    @property
    def host(self) -> str:
        """The address the server binds to."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the server, for logs, clients and tests."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def _bind(self) -> socket.socket:
        """A TCP socket bound to the address (SO_REUSEADDR), for the server to listen on;
        :attr:`port` is the bound port from here on. Raises ``OSError`` when it is taken."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except BaseException:
            sock.close()
            raise
        self._port = int(sock.getsockname()[1])
        return sock
