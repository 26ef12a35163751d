"""The async reader over a sync one: every call that may wait runs on the view's pool."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

__all__ = ["ThreadedReader"]

T = TypeVar("T")

#: How the view runs a call on its pool: ``await run(fn, *args)``.
Runner = Callable[..., Awaitable[Any]]


class ThreadedReader:
    """An :class:`~storager.AsyncReader` over the reader a sync store's ``open_reader`` gave.

    Reads, seeks and close run on the store's thread pool; the event loop never waits
    on the network or the disk. Calls on one reader must not overlap (await each).
    """

    def __init__(self, reader: BinaryIO, run: Runner) -> None:
        self._reader = reader
        self._run = run
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    async def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (everything left when negative); ``b""`` at the end."""
        data: bytes = await self._run(self._reader.read, size)
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the current position and return the number of bytes read."""
        # Every reader open_reader returns has readinto (the protocol promises it).
        readinto = self._reader.readinto  # type: ignore[attr-defined]
        count: int | None = await self._run(readinto, buffer)
        return count or 0

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (relative to ``whence`` as in ``io``) and return the position."""
        position: int = await self._run(self._reader.seek, offset, whence)
        return position

    async def tell(self) -> int:
        """Return the current position."""
        position: int = await self._run(self._reader.tell)
        return position

    async def close(self) -> None:
        """Release the reader; closing twice is fine."""
        if not self._closed:
            self._closed = True
            await self._run(self._reader.close)

    async def __aenter__(self) -> ThreadedReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<ThreadedReader over {self._reader!r}>"
