"""The lean path's transport: a bounded, fork-safe pool of kept-alive HTTP connections.

Plain ``http.client`` connections (``HTTPSConnection`` with a default, verifying TLS
context), reused across requests. A request that fails on a connection taken from the
pool before any answer arrived is sent once more on a fresh connection: the server
closed an idle keep-alive connection, which is not an error. After a ``fork`` the child
drops the parent's connections (sharing a socket between processes would interleave
their bytes) and opens its own.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from dataclasses import dataclass

__all__ = ["TRANSPORT_ERRORS", "ConnectionPool", "Response"]

#: Errors that mean the connection failed, not that the server answered.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # reset, refused, aborted, broken pipe
    http.client.HTTPException,  # RemoteDisconnected, BadStatusLine, IncompleteRead...
    socket.timeout,
    ssl.SSLError,
    OSError,
)

#: Errors on a reused connection that mean it went stale while idle.
_STALE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


@dataclass(slots=True)
class Response:
    """A finished HTTP exchange: status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class ConnectionPool:
    """Connections to one ``host:port``; at most ``max_idle`` are kept between requests.

    Callers in more threads than ``max_idle`` each get a connection (the pool never
    blocks); the surplus is closed when returned. The store's own parallel helpers run
    on an executor of ``max_connections`` threads, which is what bounds them.
    """

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int | None,
        *,
        max_idle: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.timeout = timeout
        if scheme == "https" and ssl_context is None:
            # Verifies certificates and host names.
            ssl_context = ssl.create_default_context()
        self._ssl = ssl_context
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def _new(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._pid != os.getpid():
                # Forked: these sockets belong to the parent too. Forget them unclosed
                # (closing only drops this process's descriptor, but be explicit).
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and self._pid == os.getpid() and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | bytearray | memoryview | None = None,
    ) -> Response:
        """Send one request and read the whole answer.

        Raises:
            One of TRANSPORT_ERRORS when no answer could be had.
        """
        for attempt in (0, 1):
            conn, reused = self._take()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            if resp.will_close:
                conn.close()
            self._give(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection; connections in use close when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                conn.close()

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.scheme}://{self.host}:{self.port} idle={len(self._idle)}>"
