"""Readers: ranged GETs started ahead of the caller, each read into its own block.

:class:`PrefetchingReader` is the raw, seekable reader ``open_reader`` returns (inside
an ``io.BufferedReader`` for small reads). It keeps up to ``depth`` ranged GETs of
``block`` bytes in flight on the store's executor, each read from the socket straight
into a block buffer (``Transport.get(into=...)``), and ``readinto`` copies from the
block into the caller's buffer: one copy from socket to caller. Consumed blocks are
reused, so memory is ``depth`` blocks whatever the object's size. Every range is
pinned to the ETag seen at open, so a reader never mixes two versions of the object.
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future

__all__ = ["PrefetchingReader"]

#: ``fetch(offset, into)`` fills ``into`` from ``offset`` (one ranged GET); returns the
#: bytes written (fewer at the object's end).
Fetch = Callable[[int, memoryview], int]


class PrefetchingReader(io.RawIOBase):
    """A seekable raw reader over ``length`` bytes from ``start`` of one object."""

    def __init__(
        self,
        fetch: Fetch,
        executor: Executor,
        *,
        start: int,
        length: int,
        depth: int,
        block: int,
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self._executor = executor
        self._start = start
        self._length = length
        self._depth = depth
        self._block = block
        self._pos = 0  # the caller's position, relative to start
        self._next = 0  # where the next block to request begins
        self._queue: deque[tuple[int, bytearray, Future[int]]] = deque()
        self._current: tuple[int, memoryview, bytearray] | None = None  # (at, data, buffer)
        self._free: list[bytearray] = []

    # -- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed reader")
        out = memoryview(buffer).cast("B")
        want = min(len(out), self._length - self._pos)
        done = 0
        while done < want:
            data = self._block_at(self._pos)
            if not data:
                break  # the object ended early
            n = min(len(data), want - done)
            out[done : done + n] = data[:n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        out = bytearray(max(0, self._length - self._pos))
        n = self.readinto(out)
        del out[n:]
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._drop()
            self._free.clear()
        super().close()

    # -- blocks ---------------------------------------------------------------------------

    def _block_at(self, pos: int) -> memoryview | None:
        """The bytes from ``pos`` to the end of the block holding it."""
        current = self._current
        if current is not None:
            at, data, _ = current
            if at <= pos < at + len(data):
                return data[pos - at :]
            self._recycle()
        head = self._queue[0][0] if self._queue else self._next
        if pos != head:
            self._drop()  # a seek: start again from here
            self._next = pos
        self._fill()
        if not self._queue:
            return None
        at, buffer, future = self._queue.popleft()
        n = future.result()
        data = memoryview(buffer)[:n]
        self._current = (at, data, buffer)
        self._fill()
        if n == 0:
            return None
        return data[pos - at :]

    def _fill(self) -> None:
        while len(self._queue) + (self._current is not None) < self._depth and (
            self._next < self._length
        ):
            n = min(self._block, self._length - self._next)
            buffer = self._free.pop() if self._free else bytearray(self._block)
            view = memoryview(buffer)[:n]
            future = self._executor.submit(self._fetch, self._start + self._next, view)
            self._queue.append((self._next, buffer, future))
            self._next += n

    def _recycle(self) -> None:
        if self._current is not None:
            buffer = self._current[2]
            self._current = None
            self._free.append(buffer)

    def _drop(self) -> None:
        for _, _, future in self._queue:
            future.cancel()
        for _, _, future in self._queue:
            if not future.cancelled():
                # Still writing into its buffer: wait (the range is no longer wanted).
                with contextlib.suppress(Exception):
                    future.result()
        self._queue.clear()
        self._recycle()
        self._free.clear()
