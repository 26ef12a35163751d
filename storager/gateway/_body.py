"""Request bodies: read from ASGI while a store writes them in a worker thread.

:class:`Payload` checks a body in whichever of the four forms the request declared
(a signed hex SHA-256, ``UNSIGNED-PAYLOAD``, ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` with
chained chunk signatures, ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` with a checksum in the
trailer) plus Content-MD5 and ``x-amz-checksum-*``. :class:`BodyStream` is the iterable
a store's ``write`` consumes in its thread: it pulls about :data:`BATCH` bytes at a time
from the event loop and runs every check before it reports the end of the data, so a
body that fails one raises inside ``write`` and nothing becomes visible.

Memory per request: two batches of raw body (:data:`BATCH`: one being checked and stored,
the next being received) and one line of framing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from storager._sigv4 import (
    STREAMING_PAYLOAD,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    Verified,
)
from storager.gateway._asgi import Receive
from storager.gateway._checksums import expected_digests
from storager.gateway._chunked import ChunkChain, ChunkedDecoder
from storager.gateway._errors import S3Error

__all__ = ["BATCH", "BODY_IDLE_TIMEOUT", "BodyStream", "ClientDisconnected", "Payload"]

#: How many raw body bytes one hop from the worker thread to the event loop collects.
BATCH = 1 << 20
#: Seconds a streaming body may send nothing before its write is dropped (so a stalled
#: client cannot hold a worker thread for ever).
BODY_IDLE_TIMEOUT = 60.0
_STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


class ClientDisconnected(Exception):
    """The client went away before the body ended."""


class Payload:
    """Every check one request body must pass, fed raw bytes, yielding decoded data.

    Args:
        headers: The request's headers (lower-case names).
        verified: The request's verified signature, or None when anonymous.
    """

    def __init__(self, headers: Mapping[str, str], verified: Verified | None) -> None:
        declared = verified.payload_hash if verified else headers.get("x-amz-content-sha256", "")
        if verified is None and declared not in (
            STREAMING_UNSIGNED_TRAILER,
            STREAMING_PAYLOAD,
            _STREAMING_SIGNED_TRAILER,
        ):
            declared = UNSIGNED_PAYLOAD  # nothing signed: a declared hash proves nothing
        self._sha256: hashlib._Hash | None = None
        self._wanted_sha256 = ""
        self._decoder: ChunkedDecoder | None = None
        if declared in (STREAMING_PAYLOAD, _STREAMING_SIGNED_TRAILER):
            chain = None  # anonymous: the framing is decoded, there is no secret to check
            if verified is not None:
                if verified.presigned:
                    raise S3Error("InvalidRequest", "a presigned URL cannot stream signed chunks")
                chain = ChunkChain(
                    verified.signing_key, verified.timestamp, verified.scope, verified.signature
                )
            self._decoder = ChunkedDecoder(chain, trailer=declared == _STREAMING_SIGNED_TRAILER)
        elif declared == STREAMING_UNSIGNED_TRAILER:
            self._decoder = ChunkedDecoder(None, trailer=True)
        elif declared != UNSIGNED_PAYLOAD:
            self._sha256 = hashlib.sha256()
            self._wanted_sha256 = declared
        self._digests, self._by_trailer = expected_digests(headers)
        if self._by_trailer and self._decoder is None:
            raise S3Error("InvalidRequest", "x-amz-trailer needs an aws-chunked body")
        self.length = self._declared_length(headers)
        self.received = 0

    def _declared_length(self, headers: Mapping[str, str]) -> int | None:
        name = "x-amz-decoded-content-length" if self._decoder else "content-length"
        text = headers.get(name)
        if text is None:
            return None
        if not text.isdigit():
            raise S3Error("InvalidArgument", f"{name} must be a whole number")
        return int(text)

    def feed(self, raw: bytes) -> list[memoryview] | list[bytes]:
        """Check the next raw piece; return the object data it holds."""
        if self._sha256 is not None:
            self._sha256.update(raw)
        pieces: list[memoryview] | list[bytes]
        pieces = self._decoder.feed(raw) if self._decoder else [raw]
        for piece in pieces:
            self.received += len(piece)
            for expected in self._digests:
                expected.digest.update(piece)
        if self.length is not None and self.received > self.length:
            raise S3Error("InvalidRequest", "the body is longer than its declared length")
        return pieces

    def finish(self) -> None:
        """Run the end-of-body checks; raise the S3 error of the first that fails."""
        if self._decoder is not None:
            self._decoder.finish()
            for name, value in self._decoder.trailers.items():
                if name in self._by_trailer:
                    self._by_trailer[name].wanted = _b64(name, value)
        if self.length is not None and self.received != self.length:
            raise S3Error("IncompleteBody", "the body is shorter than its declared length")
        if self._sha256 is not None and not hmac.compare_digest(
            self._sha256.hexdigest(), self._wanted_sha256
        ):
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "the provided x-amz-content-sha256 does not match what was computed",
            )
        for expected in self._digests:
            expected.check()


def _b64(name: str, value: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidRequest", f"the trailer {name} is not valid base64") from None


class BodyStream:
    """The request body as an iterable of checked data, for a store's ``write``.

    Iterate it in a worker thread, never on the event loop. When a check fails or the
    client goes away it raises, and keeps the S3 error in :attr:`failure` so the
    handler answers with it whatever the store made of the exception.
    """

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop, payload: Payload) -> None:
        self._receive = receive
        self._loop = loop
        self._payload = payload
        self.failure: S3Error | ClientDisconnected | None = None
        self._ended = False

    async def _batch(self) -> tuple[list[bytes], bool]:
        pieces: list[bytes] = []
        size = 0
        more = True
        # One timer per batch, pushed back at each message (asyncio.wait_for would start
        # a task per message: ~4,000 per 256 MiB, a large share of the loop's time).
        try:
            async with asyncio.timeout(BODY_IDLE_TIMEOUT) as idle:
                while more and size < BATCH:
                    message = await self._receive()
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnected("the client disconnected before the body ended")
                    piece = message.get("body", b"")
                    if piece:
                        pieces.append(piece)
                        size += len(piece)
                    more = bool(message.get("more_body", False))
                    idle.reschedule(self._loop.time() + BODY_IDLE_TIMEOUT)
        except TimeoutError:
            raise S3Error(
                "RequestTimeout", "no body data arrived in time; the write was dropped"
            ) from None
        return pieces, more

    def __iter__(self) -> Iterator[bytes]:
        if self._ended:
            return
        # The next batch is received on the event loop while this thread checks and
        # stores the current one (two cores work on one upload); so a request holds at
        # most two batches.
        pending: Future[tuple[list[bytes], bool]] | None = self._next_batch()
        try:
            while pending is not None:
                batch, more = self._wait(pending)
                pending = self._next_batch() if more else None
                for raw in batch:
                    for piece in self._payload.feed(raw):
                        if piece:
                            yield bytes(piece) if isinstance(piece, memoryview) else piece
            self._ended = True
            self._payload.finish()
        except (S3Error, ClientDisconnected) as exc:
            self.failure = exc
            raise
        finally:
            if pending is not None:
                pending.cancel()  # the write stopped early: receive no more of the body

    def _wait(self, pending: Future[tuple[list[bytes], bool]]) -> tuple[list[bytes], bool]:
        """The batch ``pending`` receives; gives up if the event loop stops meanwhile.

        The loop answers within ``BODY_IDLE_TIMEOUT`` per message while it runs; a loop
        that stopped (a server shut down mid-request) never will, and a worker thread
        waiting on it for good would also hold the interpreter at exit.
        """
        while True:
            try:
                return pending.result(timeout=1.0)
            except FutureTimeout:
                if not self._loop.is_running():
                    raise ClientDisconnected("the server stopped before the body ended") from None

    def _next_batch(self) -> Future[tuple[list[bytes], bool]]:
        return asyncio.run_coroutine_threadsafe(self._batch(), self._loop)
