"""The async form of Cached's seams: take the locks, tee a write, fill from a reader.

The per-path locks are thread locks (``Coherence``'s), so the rules hold across event
loops in several threads too; a coroutine never blocks its loop on one: it takes the
lock without waiting, or tries again after a short sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, cast

from storager._async_types import AsyncReader, AsyncWriteData
from storager._protocols import WriteData
from storager._streams import iter_chunks
from storager.aio._native import _is_async, async_chunks
from storager.combinators._cache_coherence import Capture, Tee

__all__ = ["async_filling_reader", "async_held", "async_teed"]

_POLL_MIN = 0.0005
_POLL_MAX = 0.01


@contextlib.asynccontextmanager
async def async_held(locks: Sequence[threading.Lock]) -> AsyncIterator[None]:
    """Hold ``locks`` (in the order given) without blocking the event loop."""
    taken: list[threading.Lock] = []
    try:
        for lock in locks:
            delay = _POLL_MIN
            while not lock.acquire(blocking=False):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()


def async_teed(path: str, data: AsyncWriteData, limit: int) -> tuple[Tee, AsyncWriteData]:
    """Return a Tee over a write's stream (sync or async) and the data to hand on."""
    tee = Tee((), limit)
    if _is_async(data):
        return tee, _teeing(tee, path, data)
    return tee, _teeing_sync(tee, iter_chunks("write", "cached", path, cast(WriteData, data)))


async def _teeing(tee: Tee, path: str, data: AsyncWriteData) -> AsyncIterator[bytes]:
    async for chunk in async_chunks("write", "cached", path, data):
        piece = bytes(chunk)
        tee.keep(piece)
        yield piece


def _teeing_sync(tee: Tee, chunks: Iterator[Any]) -> Iterator[bytes]:
    for chunk in chunks:
        piece = bytes(chunk)
        tee.keep(piece)
        yield piece


def async_filling_reader(
    inner: AsyncReader, capture: Capture, complete: Callable[[bytes], Awaitable[None]]
) -> AsyncReader:
    """Return a reader of ``inner`` that awaits ``complete`` after a whole sequential read."""
    return _FillingReader(inner, capture, complete)


class _FillingReader:
    """Read through ``inner``; ``complete`` gets the object after a whole sequential read."""

    def __init__(
        self,
        inner: AsyncReader,
        capture: Capture,
        complete: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._inner = inner
        self._capture = capture
        self._complete = complete

    async def _took(self, data: bytes, asked: int) -> None:
        whole = self._capture.took(data, asked)
        if whole is not None:
            await self._complete(whole)

    async def read(self, size: int = -1) -> bytes:
        data = await self._inner.read(size)
        await self._took(data, size if size >= 0 else max(len(data), 1))
        if size < 0:
            await self._took(b"", 1)  # read to the end
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        data = await self.read(len(view))
        view[: len(data)] = data
        return len(data)

    async def seek(self, offset: int, whence: int = 0) -> int:
        position = await self._inner.seek(offset, whence)
        self._capture.seeked(position)
        return position

    async def tell(self) -> int:
        return await self._inner.tell()

    async def close(self) -> None:
        self._capture.drop()
        await self._inner.close()

    async def __aenter__(self) -> _FillingReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
