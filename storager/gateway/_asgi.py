"""The ASGI types the gateway uses, and the helpers that send a response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = ["Headers", "Receive", "Scope", "Send", "send_bytes", "start"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Response headers as ASGI wants them.
Headers = list[tuple[bytes, bytes]]


def encode_headers(pairs: Iterable[tuple[str, str]]) -> Headers:
    """Encode ``(name, value)`` response headers (latin-1, as HTTP/1.1 carries them)."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


async def start(send: Send, status: int, headers: Headers) -> None:
    """Send the status line and headers."""
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def send_bytes(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """Send a whole response with a body (which may be empty)."""
    await start(send, status, headers)
    await send({"type": "http.response.body", "body": body, "more_body": False})
