"""The native async s3 path's connections: kept-alive asyncio streams to one host.

The async twin of ``_connections.ConnectionPool``, for one event loop (the store keeps
one per running loop in a :class:`~storager.aio.LoopLocal`): at most ``limit``
connections are open at once (a request beyond waits for one, as aiohttp's connector
does) and every one is kept alive for the next request. The request head is built and
checked by the sync pool's own ``_request_head`` (a control character anywhere refuses
the request before anything is sent), and the answer is read as the sync pool reads it:
HTTP/1.1 with Content-Length, chunked or read-to-close bodies, 1xx answers skipped.

Failures are raised as the sync pool raises them (``http.client`` errors, ``OSError``,
``TimeoutError``), so the one retry rule (``_retries.worth_retrying``) and the one error
map (``_errors.unreachable``) serve both. A request that fails on a reused connection
before any answer arrived is sent once more on a fresh one (the server closed it while
idle). A cancelled request closes its connection: it is never reused half-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ssl

from storager.services.s3._connections import Response, _request_head

__all__ = ["AsyncConnections"]

#: Bodies up to this size are written with the head in one buffer.
_COALESCE_MAX = 64 << 10
#: A large body is written in pieces of this size, each drained under the timeout.
_WRITE_PIECE = 1 << 20
#: A body is read in pieces of at most this size, each under the timeout.
_READ_PIECE = 1 << 20
#: The longest header block accepted (the stream's line limit).
_HEAD_LIMIT = 1 << 20

#: Errors on a reused connection that mean it went stale while idle.
_STALE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


class _Connection:
    """One kept-alive connection: its reader and writer."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class AsyncConnections:
    """Connections of one event loop to ``host:port``; see the module docstring.

    Args:
        scheme: ``http`` or ``https`` (TLS verified by a default context).
        host, port: Where to connect.
        limit: Connections open at once.
        timeout: Seconds to connect, to send, and to wait for each piece of an answer.
    """

    def __init__(
        self, scheme: str, host: str, port: int | None, *, limit: int, timeout: float
    ) -> None:
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        self.timeout = timeout
        self._ssl = ssl.create_default_context() if scheme == "https" else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    def __repr__(self) -> str:
        return f"<AsyncConnections {self.host}:{self.port} idle={len(self._idle)}>"

    async def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | bytearray | memoryview | None = None,
        *,
        into: memoryview | None = None,
    ) -> Response:
        """Send one request and read the whole answer.

        With ``into``, a successful answer whose Content-Length fits is read into it,
        and the response's body is a view of ``into`` (no buffer of its own).

        Raises:
            UnsafeRequestError: The head would be unsafe; nothing is sent.
            An ``http.client`` error, ``OSError`` or ``TimeoutError`` when no answer
            could be had.
        """
        size = 0 if body is None else memoryview(body).nbytes
        head = _request_head(method, target, headers, size)
        async with self._slots:
            for attempt in (0, 1):
                conn = self._take_idle() if attempt == 0 else None
                reused = conn is not None
                if conn is None:
                    conn = await self._connect()
                try:
                    response, keep = await self._exchange(conn, method, head, body, size, into)
                except _STALE:
                    conn.close()
                    if reused and attempt == 0:
                        continue
                    raise
                except BaseException:
                    conn.close()  # cancelled or failed mid-exchange: never reuse it
                    raise
                if keep and not self._closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close every idle connection; those in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()

    def _take_idle(self) -> _Connection | None:
        """An idle connection the server has not closed yet (as far as the loop knows)."""
        while self._idle:
            conn = self._idle.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, limit=_HEAD_LIMIT
            )
        return _Connection(reader, writer)

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        head: bytes,
        body: bytes | bytearray | memoryview | None,
        size: int,
        into: memoryview | None,
    ) -> tuple[Response, bool]:
        writer, reader = conn.writer, conn.reader
        try:
            if body is None or not size:
                writer.write(head)
            elif size <= _COALESCE_MAX:
                writer.write(head + bytes(body))
            else:
                await self._send_body(writer, head, body)
            async with asyncio.timeout(self.timeout):
                await writer.drain()
                while True:
                    block = await reader.readuntil(b"\r\n\r\n")
                    status, version, answer = _parse_head(block)
                    if status >= 200:
                        break  # 1xx answers (100 Continue unasked for) precede the real one
            keep = version == "HTTP/1.1" and answer.get("connection", "").lower() != "close"
            data: bytes | bytearray | memoryview = b""
            length = answer.get("content-length")
            if method == "HEAD" or status in (204, 304):
                pass
            elif "chunked" in answer.get("transfer-encoding", "").lower():
                data = await self._chunked(reader)
            elif length is not None:
                n = int(length)
                if into is not None and 200 <= status < 300 and n <= len(into):
                    data = await self._exact_into(reader, into[:n])
                else:
                    data = await self._exact(reader, n)
            else:
                async with asyncio.timeout(self.timeout):
                    data = await reader.read()
                keep = False
        except asyncio.IncompleteReadError as exc:
            if not exc.partial and not exc.expected:
                raise http.client.RemoteDisconnected("connection closed by the server") from exc
            raise http.client.IncompleteRead(exc.partial) from exc
        except asyncio.LimitOverrunError as exc:
            raise http.client.LineTooLong("header block") from exc
        return Response(status, answer, data), keep

    async def _send_body(
        self, writer: asyncio.StreamWriter, head: bytes, body: bytes | bytearray | memoryview
    ) -> None:
        """Write a large body a piece at a time, each sent on before the next is given.

        The transport copies what the socket does not take at once: written whole, a
        5 GiB body could be held twice.
        """
        writer.write(head)
        view = memoryview(body).cast("B")
        for at in range(0, len(view), _WRITE_PIECE):
            writer.write(view[at : at + _WRITE_PIECE])
            async with asyncio.timeout(self.timeout):
                await writer.drain()

    async def _exact(self, reader: asyncio.StreamReader, n: int) -> bytes | bytearray:
        if n <= _READ_PIECE:
            async with asyncio.timeout(self.timeout):
                return await reader.readexactly(n)
        body = bytearray()
        while len(body) < n:
            async with asyncio.timeout(self.timeout):
                body += await reader.readexactly(min(_READ_PIECE, n - len(body)))
        return body

    async def _exact_into(self, reader: asyncio.StreamReader, view: memoryview) -> memoryview:
        """Fill ``view`` with exactly its length in bytes from the stream; return it."""
        have, n = 0, len(view)
        while have < n:
            async with asyncio.timeout(self.timeout):
                piece = await reader.read(min(_READ_PIECE, n - have))
            if not piece:
                raise http.client.IncompleteRead(bytes(view[:have]), n - have)
            view[have : have + len(piece)] = piece
            have += len(piece)
        return view

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes | bytearray] = []
        while True:
            async with asyncio.timeout(self.timeout):
                line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, if any, end with an empty line
                    async with asyncio.timeout(self.timeout):
                        if await reader.readuntil(b"\r\n") == b"\r\n":
                            return b"".join(parts)
            parts.append(await self._exact(reader, size))
            async with asyncio.timeout(self.timeout):
                await reader.readexactly(2)


def _parse_head(block: bytes) -> tuple[int, str, dict[str, str]]:
    """Return the status, HTTP version and headers (lower-case names) of an answer head."""
    lines = block[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise http.client.BadStatusLine(lines[0][:80])
    answer: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        answer[name] = f"{answer[name]}, {value.strip()}" if name in answer else value.strip()
    return int(parts[1]), parts[0], answer
