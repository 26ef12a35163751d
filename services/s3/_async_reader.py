"""The native async s3 reader: ranged GETs of one object version, the next one ahead.

The async twin of ``_reader.PrefetchingReader``, kept smaller: while the caller reads one
block, the GET of the next block is already running (a task of the caller's loop), so a
sequential read overlaps the network with the caller's work, in ``2 * block`` bytes of
memory whatever the object's size. A seek elsewhere drops the block fetched ahead.

Bound to no loop, like the store: a block fetched ahead by a task of another loop (one
``asyncio.run`` per read, as the conformance suite does) is dropped, and the block is
fetched again on the running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from storager.aio._range_reader import SeekableAsyncReader

__all__ = ["ReadAheadReader"]

#: ``fetch(offset, size)`` returns ``size`` bytes from ``offset`` of the reader's range
#: (fewer only at the object's end).
Fetch = Callable[[int, int], Awaitable[bytes | bytearray]]


class ReadAheadReader(SeekableAsyncReader):
    """An :class:`~storager.AsyncReader` over ``length`` bytes, a block ahead; see above."""

    def __init__(self, fetch: Fetch, length: int, *, block: int) -> None:
        self._fetch = fetch
        self._length = length
        self._block = block
        self._pos = 0
        self._current: tuple[int, bytes | bytearray] | None = None
        self._ahead: tuple[int, asyncio.Task[bytes | bytearray]] | None = None
        self._closed = False

    async def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (everything left when negative); ``b""`` at the end."""
        self._check_open()
        left = self._length - self._pos
        want = left if size is None or size < 0 else min(size, left)
        parts: list[bytes] = []
        while want > 0:
            view = await self._block_from(self._pos)
            if not view:
                break  # the object ended early
            piece = bytes(view[:want])
            view.release()
            parts.append(piece)
            self._pos += len(piece)
            want -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def close(self) -> None:
        """Release the reader and drop the block fetched ahead; closing twice is fine."""
        self._closed = True
        self._current = None
        self._drop_ahead()

    # -- blocks ---------------------------------------------------------------------------

    async def _block_from(self, pos: int) -> memoryview:
        """The bytes from ``pos`` to the end of the block holding it (empty at the end)."""
        current = self._current
        if current is not None:
            at, data = current
            if at <= pos < at + len(data):
                return memoryview(data)[pos - at :]
        self._current = None
        if pos >= self._length:
            return memoryview(b"")
        data = await self._take(pos)
        self._current = (pos, data)
        following = pos + len(data)
        if data and following < self._length:
            self._start_ahead(following)
        return memoryview(data)

    async def _take(self, pos: int) -> bytes | bytearray:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            at, task = ahead
            if at == pos and task.get_loop() is asyncio.get_running_loop():
                if not task.cancelled():
                    return await task
            else:
                _drop(task)
        return await self._fetch(pos, min(self._block, self._length - pos))

    def _start_ahead(self, pos: int) -> None:
        n = min(self._block, self._length - pos)
        task = asyncio.ensure_future(self._fetch(pos, n))
        task.add_done_callback(_retrieve)
        self._ahead = (pos, task)

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _drop(ahead[1])


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a failure of a block fetched ahead as seen: the read that wants it re-raises it."""
    if not task.cancelled():
        task.exception()


def _drop(task: asyncio.Task[Any]) -> None:
    """Cancel a fetch ahead no longer wanted, on its own loop if that one still runs."""
    if task.done():
        return
    loop = task.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        task.cancel()
    elif not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # it closed meanwhile
            loop.call_soon_threadsafe(task.cancel)
