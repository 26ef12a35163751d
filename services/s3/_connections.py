"""The HTTP transport's connections: a bounded, fork-safe pool of kept-alive sockets.

Plain ``http.client`` connections (``HTTPSConnection`` with a default, verifying TLS
context), reused across requests. ``http.client`` opens them (TCP_NODELAY, timeouts,
TLS and host name checks); the exchange itself is written on the connection's socket:
http.client's request and answer machinery (headers parsed by the email package, two
sends per PUT, a file object per answer) cost ~240 us of CPU per small request here,
more than signing and everything else together (measured in benchmarks/S3.md).
A large answer body can be read straight into a caller's buffer (``into``), so a
256 MiB GET lands in its final place without an intermediate copy, or left on its
connection (``stream=True``) and read into the caller's buffers as they come
(:class:`BodyStream`; a stream abandoned half-read closes its connection).
The exchange is plain HTTP/1.1: one send for headers and a small body, answers with
Content-Length, chunked or read-to-close bodies. A request that fails on a connection taken from the
pool before any answer arrived is sent once more on a fresh connection: the server
closed an idle keep-alive connection, which is not an error. After a ``fork`` the child
drops the parent's connections (sharing a socket between processes would interleave
their bytes) and opens its own.

The request head is built, and checked, before a connection is taken: a CR, LF, NUL or
any other control character (or a character Latin-1 cannot encode) in the method, the
target or a header name or value raises :class:`UnsafeRequestError` and nothing is
sent. Pairs are checked long before (``storager._headers``); this is the last line of
defence for everything else that reaches a header, so no value can add a header or
smuggle a second request onto a pooled connection.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import threading
from dataclasses import dataclass

__all__ = ["TRANSPORT_ERRORS", "BodyStream", "ConnectionPool", "Response", "UnsafeRequestError"]

#: Bodies up to this size are sent in the same send() as the headers.
_COALESCE_MAX = 64 << 10
#: Bodies up to this size are returned as bytes; larger ones as the bytearray read into.
_COPY_MAX = 1 << 20

#: Characters no part of a request head may hold (line breaks end a header or the head).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: A header name: an RFC 7230 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: How many forks this process is from the one that imported this module: a pool made
#: in an earlier generation holds its parent's sockets. Counting forks in a fork hook
#: costs nothing per request, where ``os.getpid()`` is a system call on each.
_forks = 0


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)

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


class UnsafeRequestError(ValueError):
    """A request head would hold a control character or a bad header name; nothing was sent.

    The message names the part (method, target or header name) and shows the offending
    text as a truncated ``repr``, never raw.
    """


def _shown(text: str) -> str:
    return repr(text[:40]) + ("..." if len(text) > 40 else "")


def _request_head(method: str, target: str, headers: dict[str, str], size: int) -> bytes:
    """Build the request head, refusing anything that could break out of its line."""
    if _TOKEN.fullmatch(method) is None or _CONTROL.search(target) or " " in target:
        raise UnsafeRequestError(
            f"request line refused: method {_shown(method)}, target {_shown(target)}"
        )
    # One check over all names and one over all values (names joined are a token only
    # if each is): a regex call per header cost more than the rest of the head.
    if headers and (
        "" in headers
        or _TOKEN.fullmatch("".join(headers)) is None
        or _CONTROL.search("".join(headers.values())) is not None
    ):
        _refuse_header(headers)
    head = "".join(
        [f"{method} {target} HTTP/1.1\r\n", *(f"{n}: {v}\r\n" for n, v in headers.items())]
    )
    if size or method in ("PUT", "POST"):
        head += f"content-length: {size}\r\n"
    try:
        return (head + "\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise UnsafeRequestError(
            f"request head refused: {_shown(exc.object[exc.start : exc.end])} is not Latin-1"
        ) from None


def _refuse_header(headers: dict[str, str]) -> None:
    """Raise for the first header whose name is not a token or whose value is unsafe."""
    for name, value in headers.items():
        if _TOKEN.fullmatch(name) is None:
            raise UnsafeRequestError(f"header name {_shown(name)} refused: not a token")
        if _CONTROL.search(value) is not None:
            raise UnsafeRequestError(
                f"header {name!r} refused: its value holds a control character: {_shown(value)}"
            )
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(slots=True)
class Response:
    """A finished HTTP exchange: status, headers (lower-case names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes | bytearray | memoryview
    #: With ``request(..., stream=True)``, a 2xx answer's unread body (``body`` is empty).
    stream: BodyStream | None = None


class BodyStream:
    """The unread body of one answer, read from its socket into the caller's buffers.

    It holds the answer's connection: read to its end, the connection goes back to the
    pool; closed before (abandoned, or after a failed read), the connection is closed,
    never pooled half-read.
    """

    __slots__ = ("_conn", "_keep", "_pool", "_wire", "remaining")

    def __init__(
        self,
        pool: ConnectionPool,
        conn: http.client.HTTPConnection,
        wire: _Wire,
        length: int,
        keep: bool,
    ) -> None:
        self._pool: ConnectionPool | None = pool
        self._conn = conn
        self._wire = wire
        self._keep = keep
        self.remaining = length

    def readinto(self, view: memoryview) -> int:
        """Read at most ``len(view)`` bytes into ``view``; 0 only at the body's end.

        Raises one of TRANSPORT_ERRORS (the stream is then closed) when the connection
        fails or ends before the body does.
        """
        n = min(len(view), self.remaining)
        if n == 0 or self._pool is None:
            return 0
        wire = self._wire
        try:
            if wire.buf:
                got = min(n, len(wire.buf))
                view[:got] = wire.buf[:got]
                del wire.buf[:got]
            else:
                got = wire.sock.recv_into(view, n)
                if not got:
                    raise http.client.IncompleteRead(b"", self.remaining)
        except BaseException:
            self.close()
            raise
        self.remaining -= got
        if not self.remaining:
            pool, self._pool = self._pool, None
            if self._keep and not wire.buf:
                pool._give(self._conn)
            else:
                self._conn.close()
        return got

    def close(self) -> None:
        """Abandon the rest of the body: the connection is closed, not pooled."""
        if self._pool is not None:
            self._pool = None
            self._conn.close()


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
        self._generation = _forks
        self._closed = False

    def _new(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._generation != _forks:
                # Forked: these sockets belong to the parent too. Forget them unclosed
                # (closing only drops this process's descriptor, but be explicit).
                self._idle = []
                self._generation = _forks
            if self._idle:
                return self._idle.pop(), True
        return self._new(), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and self._generation == _forks and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | bytearray | memoryview | None = None,
        *,
        into: memoryview | None = None,
        sent: threading.Event | None = None,
        stream: bool = False,
    ) -> Response:
        """Send one request and read the whole answer.

        With ``stream``, a 2xx answer with a Content-Length is returned after its head:
        its body is left on the connection, in ``Response.stream``.

        With ``into``, a successful answer whose Content-Length fits is read into it,
        and the response's body is a view of ``into``. ``sent`` is set once the request
        is on the wire (before its answer is awaited).

        Raises:
            UnsafeRequestError: The head would hold a control character, a header
                name that is not a token, or text Latin-1 cannot encode; nothing is sent.
            One of TRANSPORT_ERRORS when no answer could be had.
        """
        size = 0 if body is None else memoryview(body).nbytes
        head = _request_head(method, target, headers, size)
        for attempt in (0, 1):
            conn, reused = self._take()
            try:
                if conn.sock is None:
                    conn.connect()  # http.client: TCP_NODELAY, timeout, TLS with verification
                result, keep, unread = _exchange(
                    conn.sock, method, head, body, size, into, sent, stream
                )
            except _STALE:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if unread is not None:
                result.stream = BodyStream(
                    self, conn, unread, int(result.headers["content-length"]), keep
                )
            elif keep:
                self._give(conn)
            else:
                conn.close()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection; connections in use close when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        if self._generation == _forks:
            for conn in idle:
                conn.close()

    def __repr__(self) -> str:
        return f"<ConnectionPool {self.scheme}://{self.host}:{self.port} idle={len(self._idle)}>"


class _Wire:
    """Reads an HTTP/1.1 answer from a socket through one buffer."""

    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("connection closed by the server")
        self.buf += chunk

    def line_block(self, end: bytes) -> bytes:
        """Return the bytes up to ``end`` (dropped), reading as needed."""
        while True:
            at = self.buf.find(end)
            if at >= 0:
                out = bytes(self.buf[:at])
                del self.buf[: at + len(end)]
                return out
            if len(self.buf) > 1 << 20:
                raise http.client.LineTooLong("header block")
            self._more()

    def exact_into(self, view: memoryview) -> memoryview:
        """Fill ``view`` with exactly its length in bytes; return it."""
        n = len(view)
        have = min(n, len(self.buf))
        view[:have] = self.buf[:have]
        del self.buf[:have]
        while have < n:
            got = self.sock.recv_into(view[have:], min(n - have, 1 << 20))
            if not got:
                raise http.client.IncompleteRead(bytes(view[:have]), n - have)
            have += got
        return view

    def exact(self, n: int) -> bytes | bytearray:
        """Return exactly ``n`` bytes."""
        if n <= len(self.buf):
            out = bytes(self.buf[:n])
            del self.buf[:n]
            return out
        body = bytearray(n)
        have = len(self.buf)
        body[:have] = self.buf
        self.buf.clear()
        view = memoryview(body)
        while have < n:
            got = self.sock.recv_into(view[have:], min(n - have, 1 << 20))
            if not got:
                raise http.client.IncompleteRead(bytes(body[:have]), n - have)
            have += got
        view.release()
        return bytes(body) if n <= _COPY_MAX else body

    def chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.line_block(b"\r\n").split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while self.line_block(b"\r\n"):
                    pass
                return b"".join(parts)
            parts.append(bytes(self.exact(size)))
            self.line_block(b"\r\n")

    def to_close(self) -> bytes:
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                out = bytes(self.buf)
                self.buf.clear()
                return out
            self.buf += chunk


def _exchange(
    sock: socket.socket,
    method: str,
    head: bytes,
    body: bytes | bytearray | memoryview | None,
    size: int,
    into: memoryview | None,
    sent: threading.Event | None = None,
    stream: bool = False,
) -> tuple[Response, bool, _Wire | None]:
    """Send a checked head and the body on ``sock``, read the answer; say whether to keep it.

    With ``stream``, a 2xx answer with a Content-Length comes back after its head, its
    body left unread in the returned ``_Wire`` (the pool wraps it in a :class:`BodyStream`).
    """
    if body is None or not size:
        sock.sendall(head)
    elif size <= _COALESCE_MAX:
        sock.sendall(head + bytes(body))
    else:
        sock.sendall(head)
        sock.sendall(body)
    if sent is not None:
        sent.set()
    wire = _Wire(sock)
    while True:
        block = wire.line_block(b"\r\n\r\n").decode("latin-1").split("\r\n")
        parts = block[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise http.client.BadStatusLine(block[0][:80])
        status = int(parts[1])
        if status >= 200:
            break  # 1xx answers (100 Continue unasked for) precede the real one
    answer: dict[str, str] = {}
    for line in block[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        answer[name] = f"{answer[name]}, {value.strip()}" if name in answer else value.strip()
    keep = parts[0] == "HTTP/1.1" and answer.get("connection", "").lower() != "close"
    data: bytes | bytearray | memoryview = b""
    length = answer.get("content-length")
    if method == "HEAD" or status in (204, 304):
        pass
    elif "chunked" in answer.get("transfer-encoding", "").lower():
        data = wire.chunked()
    elif length is not None:
        n = int(length)
        if stream and 200 <= status < 300:
            return Response(status, answer, b""), keep, wire
        if into is not None and 200 <= status < 300 and n <= len(into):
            data = wire.exact_into(into[:n])
        else:
            data = wire.exact(n)
    else:
        data = wire.to_close()
        keep = False
    if wire.buf:
        keep = False  # bytes beyond the answer: do not trust this connection again
    return Response(status, answer, data), keep, None
