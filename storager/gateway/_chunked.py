"""The ``aws-chunked`` body decoder: chunk framing, chained chunk signatures, trailers.

An ``aws-chunked`` body is a series of chunks, each ``HEX-SIZE[;chunk-signature=SIG]\\r\\n``,
then that many bytes and ``\\r\\n``; a chunk of size 0 ends the data, followed by trailer
lines (``x-amz-checksum-crc32:BASE64\\r\\n``, with ``x-amz-trailer-signature:SIG\\r\\n`` in
the signed form) and an empty line. The decoder is fed the raw body piece by piece (any
split) and returns the data; it holds at most one header line, never a chunk.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from storager._sigv4 import chunk_signature, trailer_signature
from storager.gateway._errors import S3Error

__all__ = ["MAX_HEADER_LINE", "MAX_TRAILER", "ChunkChain", "ChunkedDecoder"]

#: The longest chunk header line (size, extensions) accepted.
MAX_HEADER_LINE = 4096
#: The most trailer bytes accepted.
MAX_TRAILER = 16384
_MAX_SIZE_DIGITS = 16

_HEADER, _DATA, _DATA_END, _FINAL_END, _TRAILER, _DONE = range(6)


@dataclass(frozen=True)
class ChunkChain:
    """What chunk signatures chain from: the request's signing key, time, scope and seed."""

    signing_key: bytes
    timestamp: str
    scope: str
    seed: str


def _malformed(reason: str) -> S3Error:
    return S3Error("InvalidRequest", f"malformed aws-chunked body: {reason}")


class ChunkedDecoder:
    """Decode an ``aws-chunked`` body incrementally.

    Args:
        chain: Verify each chunk's signature (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``);
            None for the unsigned forms.
        trailer: Whether the body carries a trailer (the ``-TRAILER`` forms).
    """

    def __init__(self, chain: ChunkChain | None, *, trailer: bool) -> None:
        self._chain = chain
        self._previous = chain.seed if chain else ""
        self._expects_trailer = trailer
        self._state = _HEADER
        self._line = bytearray()
        self._remaining = 0
        self._chunk_hash: hashlib._Hash | None = None
        self._chunk_signature = ""
        self._final = False
        self._trailer = bytearray()
        self.trailers: dict[str, str] = {}
        self.decoded = 0

    def feed(self, data: bytes | memoryview) -> list[memoryview]:
        """Decode the next piece of raw body; return the data it held (views of it)."""
        view = memoryview(data)
        out: list[memoryview] = []
        pos = 0
        end = len(view)
        while pos < end:
            if self._state == _DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                if self._chunk_hash is not None:
                    self._chunk_hash.update(piece)
                out.append(piece)
                self._remaining -= take
                self.decoded += take
                pos += take
                if self._remaining == 0:
                    self._end_chunk_data()
            elif self._state == _DONE:
                raise _malformed("bytes after the final chunk")
            else:
                pos = self._take_line(view, pos, end)
        return out

    def _take_line(self, view: memoryview, pos: int, end: int) -> int:
        limit = MAX_TRAILER if self._state == _TRAILER else MAX_HEADER_LINE
        window = min(end, pos + limit + 1 - len(self._line))
        newline = bytes(view[pos:window]).find(b"\n")
        if newline < 0 and window < end:
            raise _malformed("a chunk header or trailer line is too long")
        stop = window if newline < 0 else pos + newline + 1
        self._line += view[pos:stop]
        if len(self._line) > limit:
            raise _malformed("a chunk header or trailer line is too long")
        if newline >= 0:
            if not self._line.endswith(b"\r\n"):
                raise _malformed("a line must end with CRLF")
            line = bytes(self._line[:-2])
            self._line.clear()
            self._on_line(line)
        return stop

    def _on_line(self, line: bytes) -> None:
        if self._state == _HEADER:
            self._on_chunk_header(line)
        elif self._state == _DATA_END:
            if line:
                raise _malformed("chunk data longer than its declared size")
            self._state = _HEADER
        else:
            self._on_trailer_line(line)

    def _on_chunk_header(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        size_text = size_text.strip()
        if not size_text or len(size_text) > _MAX_SIZE_DIGITS:
            raise _malformed("the chunk size is missing or too long")
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _malformed("the chunk size is not hexadecimal") from None
        if self._chain is not None:
            name, _, signature = extension.decode("latin-1").partition("=")
            if name.strip() != "chunk-signature" or not signature:
                raise S3Error("SignatureDoesNotMatch", "a chunk carries no chunk-signature")
            self._chunk_signature = signature.strip()
            self._chunk_hash = hashlib.sha256()
        self._remaining = size
        self._final = size == 0
        self._state = _DATA
        if size == 0:
            self._end_chunk_data()

    def _end_chunk_data(self) -> None:
        if self._chain is not None and self._chunk_hash is not None:
            digest = self._chunk_hash.hexdigest()
            expected = chunk_signature(
                self._chain.signing_key,
                self._chain.timestamp,
                self._chain.scope,
                self._previous,
                digest,
            )
            if not hmac.compare_digest(expected, self._chunk_signature):
                raise S3Error("SignatureDoesNotMatch", "a chunk signature does not match")
            self._previous = expected
            self._chunk_hash = None
        if self._final:
            self._state = _TRAILER if self._expects_trailer else _FINAL_END
        else:
            self._state = _DATA_END

    def _on_trailer_line(self, line: bytes) -> None:
        if self._state == _FINAL_END:
            if line:
                raise _malformed("the final chunk must be followed by an empty line")
            self._state = _DONE
            return
        if not line:
            self._finish_trailer()
            return
        self._trailer += line + b"\n"
        if len(self._trailer) > MAX_TRAILER:
            raise _malformed("the trailer is too long")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _malformed("a trailer line has no ':'")
        self.trailers[name.strip().lower()] = value.strip()

    def _finish_trailer(self) -> None:
        if self._chain is not None:
            signature = self.trailers.pop("x-amz-trailer-signature", "")
            signed = b"".join(
                line + b"\n"
                for line in bytes(self._trailer).split(b"\n")
                if line and not line.lower().startswith(b"x-amz-trailer-signature")
            )
            expected = trailer_signature(
                self._chain.signing_key,
                self._chain.timestamp,
                self._chain.scope,
                self._previous,
                signed,
            )
            if not hmac.compare_digest(expected, signature):
                raise S3Error("SignatureDoesNotMatch", "the trailer signature does not match")
        self._state = _DONE

    def finish(self) -> None:
        """Check the body ended where the framing says it does."""
        if self._state != _DONE:
            raise S3Error("IncompleteBody", "the aws-chunked body ended before its final chunk")
