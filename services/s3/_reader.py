"""Readers: one streaming GET for sequential reads, ranged GETs for the rest.

:class:`StreamingReader` is what ``open_reader`` returns (inside an
``io.BufferedReader`` for small reads): read front to back, it is served by one GET of
the remaining range, read from the socket straight into the caller's buffer. On a seek,
or when the stream fails or ends short, it goes on from its position with a
:class:`PrefetchingReader`; both are pinned to the ETag seen at open, so no byte is
lost, duplicated or taken from another version of the object.

:class:`PrefetchingReader` (alone with the s3fs transport) keeps up to ``depth`` ranged GETs of
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
from typing import Protocol

from storager.services.s3._connections import TRANSPORT_ERRORS

__all__ = ["PrefetchingReader", "StreamingReader"]

#: ``fetch(offset, into)`` fills ``into`` from ``offset`` (one ranged GET); returns the
#: bytes written (fewer at the object's end).
Fetch = Callable[[int, memoryview], int]


class Stream(Protocol):
    """An answer's body being read (``_connections.BodyStream``)."""

    def readinto(self, view: memoryview) -> int: ...

    def close(self) -> None: ...


#: ``open_stream(offset)`` starts one GET from ``offset`` to the reader's end; None when
#: the server would not stream exactly that range. Errors are the store's (a changed
#: object's precondition failure, a missing one's NotFound).
OpenStream = Callable[[int], Stream | None]


class StreamingReader(io.RawIOBase):
    """A seekable raw reader: one streaming GET while read in order, ranged GETs after.

    The stream opens at the first read. A read at another position than the stream's
    (a seek), a failed read (a cut connection) or an early end closes the stream (its
    connection is closed, never pooled half-read) and the reader goes on with
    ``ranged`` from its position, for good.
    """

    def __init__(
        self, open_stream: OpenStream, ranged: PrefetchingReader, *, start: int, length: int
    ) -> None:
        super().__init__()
        self._open_stream = open_stream
        self._ranged = ranged
        self._start = start
        self._length = length
        self._pos = 0
        self._stream: Stream | None = None
        self._stream_at = 0  # where the stream's next byte belongs
        self._streaming = True  # until the first seek or failure

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._ranged.seek(offset, whence)  # checks and resolves the offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("read from a closed reader")
        out = memoryview(buffer).cast("B")
        want = min(len(out), self._length - self._pos)
        if want <= 0:
            return 0
        done = self._streamed_into(out[:want]) if self._streaming else 0
        if done < want:
            self._ranged.seek(self._pos)
            n = self._ranged.readinto(out[done:want])
            self._pos += n
            done += n
        return done

    def _streamed_into(self, out: memoryview) -> int:
        """Fill ``out`` from the stream at the reader's position; stop streaming if it can't."""
        stream = self._stream
        if stream is None:
            stream = self._stream = self._open_stream(self._start + self._pos)
            self._stream_at = self._pos
            if stream is None:
                self._streaming = False
                return 0
        elif self._stream_at != self._pos:
            self._end_stream()  # a seek: random access from here on
            return 0
        done = 0
        try:
            while done < len(out):
                n = stream.readinto(out[done:])
                if not n:
                    break  # ended short: the ranged reads say why
                done += n
        except TRANSPORT_ERRORS:
            pass  # cut: go on with ranged GETs from here (the stream closed itself)
        self._pos += done
        self._stream_at = self._pos
        if done < len(out):
            self._end_stream()
        return done

    def _end_stream(self) -> None:
        self._streaming = False
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def readall(self) -> bytes:
        out = bytearray(max(0, self._length - self._pos))
        n = self.readinto(out)
        del out[n:]
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._end_stream()
            self._ranged.close()
        super().close()


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
