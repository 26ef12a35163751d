"""The types the async protocols share: what an async write accepts, the async reader.

Kept apart from the generated ``storager/_async_protocols.py`` so that the generated
file holds only what comes from ``definitions/operations.toml``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from types import TracebackType
from typing import Protocol

from storager._protocols import WriteData

__all__ = ["AsyncFile", "AsyncReader", "AsyncWriteData"]


class AsyncFile(Protocol):
    """A file whose ``read`` is a coroutine (aiofiles', or an :class:`AsyncReader`)."""

    async def read(self, size: int = -1, /) -> bytes:
        """Return up to ``size`` bytes; ``b""`` at the end."""
        ...


#: What an async ``write`` accepts: anything a sync write does (bytes-like, a binary
#: file object, an iterable of bytes), an async iterable of bytes, or an async file.
AsyncWriteData = WriteData | AsyncIterable[bytes] | AsyncFile


class AsyncReader(Protocol):
    """A streaming reader whose every call that may wait is a coroutine.

    ``open_reader`` returns one; use it as ``async with await store.open_reader(p) as r``.
    Nothing here blocks the event loop: it is not a file object pretending to be sync.
    """

    async def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (everything left when negative); ``b""`` at the end."""
        ...

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the current position and return the number of bytes read."""
        ...

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (relative to ``whence`` as in ``io``) and return the position."""
        ...

    async def tell(self) -> int:
        """Return the current position."""
        ...

    async def close(self) -> None:
        """Release the reader; closing twice is fine."""
        ...

    async def __aenter__(self) -> AsyncReader: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
