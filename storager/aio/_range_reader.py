"""An async reader over ranged fetches of one object version, for native async stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

__all__ = ["RangeAsyncReader", "SeekableAsyncReader"]


class SeekableAsyncReader:
    """What every native async reader shares: position, seek, readinto, closing.

    A subclass sets ``_length``, ``_pos`` and ``_closed`` and gives ``read`` and ``close``.
    """

    _length: int
    _pos: int
    _closed: bool

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    async def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the current position and return the number of bytes read."""
        view = memoryview(buffer).cast("B")
        data = await self.read(len(view))
        view[: len(data)] = data
        return len(data)

    async def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (relative to ``whence`` as in ``io``) and return the position."""
        self._check_open()
        base = {0: 0, 1: self._pos, 2: self._length}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        position = base + offset
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return position

    async def tell(self) -> int:
        """Return the current position."""
        self._check_open()
        return self._pos

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed reader")


class RangeAsyncReader(SeekableAsyncReader):
    """An :class:`~storager.AsyncReader` over ranged fetches of one object version.

    Args:
        fetch: ``await fetch(offset, size)`` returns up to ``size`` bytes from
            ``offset`` of the range this reader covers.
        length: The length of that range.
        buffer: Bytes fetched per request when a read asks for less.
    """

    def __init__(
        self, fetch: Callable[[int, int], Awaitable[bytes]], length: int, *, buffer: int
    ) -> None:
        self._fetch = fetch
        self._length = length
        self._buffer_size = buffer
        self._pos = 0
        self._buffered = b""
        self._buffered_at = 0
        self._closed = False

    async def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (everything left when negative); ``b""`` at the end."""
        self._check_open()
        left = self._length - self._pos
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        start = self._pos - self._buffered_at
        if start >= 0 and start + want <= len(self._buffered):
            data = self._buffered[start : start + want]
        elif want >= self._buffer_size:
            data = await self._fetch(self._pos, want)
        else:
            self._buffered = await self._fetch(self._pos, min(self._buffer_size, left))
            self._buffered_at = self._pos
            data = self._buffered[:want]
        self._pos += len(data)
        return data

    async def close(self) -> None:
        """Release the reader; closing twice is fine."""
        self._closed = True
        self._buffered = b""
