"""The request and response the handlers see, independent of the ASGI plumbing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from storager._sigv4 import Verified
from storager.gateway._asgi import Receive
from storager.gateway._body import BodyStream, Payload
from storager.gateway._errors import S3Error
from storager.gateway._xml import MAX_XML_BODY

__all__ = ["Request", "Response", "http_date", "parse_http_date"]


@dataclass
class Request:
    """One request: decoded path parts, query, lower-case headers and its body source."""

    method: str
    raw_path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    bucket: str
    key: str
    request_id: str
    receive: Receive
    verified: Verified | None = None
    #: Whether the bucket came from the Host header (virtual-hosted style).
    virtual_host: bool = False

    def body_stream(self) -> BodyStream:
        """The body as a checked iterable for a store's write (iterate it in a thread)."""
        return BodyStream(
            self.receive, asyncio.get_running_loop(), Payload(self.headers, self.verified)
        )

    async def small_body(self, limit: int = MAX_XML_BODY) -> bytes:
        """Read and check a small body (an XML request) on the event loop."""
        payload = Payload(self.headers, self.verified)
        if payload.length is not None and payload.length > limit:
            raise S3Error("MaxMessageLengthExceeded", "the request body is too large", status=400)
        pieces: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", "the client disconnected")
            for piece in payload.feed(message.get("body", b"")):
                pieces.append(bytes(piece))
                size += len(piece)
                if size > limit:
                    raise S3Error(
                        "MaxMessageLengthExceeded", "the request body is too large", status=400
                    )
            more = bool(message.get("more_body", False))
        payload.finish()
        return b"".join(pieces)


@dataclass
class Response:
    """An answer: status, headers and a body (bytes, or chunks sent as they come)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterator[bytes] = b""
    #: Bytes in the body, when it is streamed (for Content-Length and the access log).
    length: int | None = None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(when: datetime) -> str:
    """An RFC 7231 date (``Last-Modified``); a naive time is taken as UTC.

    Formatted here: every GET and HEAD answers with one, and ``email.utils`` takes
    half as long again (1.2-1.3 against 1.9-2.0 us).
    """
    t = when if when.tzinfo is None else when.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def parse_http_date(text: str) -> datetime | None:
    """Parse an RFC 7231 date; None when malformed (the header is then ignored, as S3 does)."""
    if not text:
        return None  # the header is absent: most requests, and the raise costs ~2 us
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
