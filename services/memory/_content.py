"""An object's bytes in memory: one buffer, or the pieces it arrived in, never joined.

A completed multipart upload is its parts' pieces as they were received, and an
append adds a piece: neither copies the bytes already held (pieces under
``SMALL_PIECE`` are merged as they come, so the pieces stay few). Joining a 256 MiB
upload on Complete cost a copy into 256 MiB of fresh pages, which the kernel maps
and zeroes, a large part of the gateway's CPU for such an upload
(``benchmarks/README.md``). Readers and ranged reads take views of the pieces; a read
of the whole of a many-piece object joins them into the bytes it returns, a copy on
each such read (the bytes of a one-piece object are returned as they are held).
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["SMALL_PIECE", "Content", "coalesce"]

#: Pieces smaller than this are merged with their neighbours as they arrive.
SMALL_PIECE = 64 << 10


def coalesce(pieces: Iterable[bytes], held: tuple[bytes, ...] = ()) -> tuple[bytes, ...]:
    """Return ``held`` followed by ``pieces``, runs of small pieces merged into one.

    A piece of ``SMALL_PIECE`` bytes or more is kept as it is (no copy); smaller ones
    are joined with the small pieces next to them, so many tiny appends or tiny
    received chunks do not make many tiny pieces.
    """
    out = list(held)
    run: list[bytes] = []
    size = 0  # of the run
    if out and len(out[-1]) < SMALL_PIECE:
        run.append(out.pop())
        size = len(run[0])
    for piece in pieces:
        if not piece:
            continue
        if len(piece) >= SMALL_PIECE:
            if run:
                out.append(b"".join(run))
                run, size = [], 0
            out.append(piece)
            continue
        run.append(piece)
        size += len(piece)
        if size >= SMALL_PIECE:
            out.append(b"".join(run))
            run, size = [], 0
    if run:
        out.append(b"".join(run) if len(run) > 1 else run[0])
    return tuple(out)


class Content:
    """Immutable bytes held as consecutive pieces."""

    __slots__ = ("_ends", "_pieces")

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = tuple(p for p in pieces if p) or (b"",)
        self._ends = list(itertools.accumulate(len(p) for p in self._pieces))

    def __len__(self) -> int:
        return self._ends[-1]

    @property
    def pieces(self) -> tuple[bytes, ...]:
        """The pieces, in order (for a new object made of these and more)."""
        return self._pieces

    def whole(self) -> bytes:
        """Return every byte (the one piece itself, else the pieces joined)."""
        if len(self._pieces) == 1:
            return self._pieces[0]
        return b"".join(self._pieces)

    def range(self, start: int, end: int) -> bytes:
        """Return the bytes ``[start, end)`` (clamped to the content)."""
        end = min(end, len(self))
        if start <= 0 and end >= len(self):
            return self.whole()
        return b"".join(self.views(start, end))

    def views(self, start: int, end: int) -> Iterator[memoryview]:
        """Yield views of the bytes ``[start, end)``, piece by piece (no copy)."""
        start, end = max(start, 0), min(end, len(self))
        index = bisect.bisect_right(self._ends, start)
        while start < end and index < len(self._pieces):
            piece_start = self._ends[index] - len(self._pieces[index])
            stop = min(end, self._ends[index])
            yield memoryview(self._pieces[index])[start - piece_start : stop - piece_start]
            start = stop
            index += 1

    def reader(self, start: int, end: int) -> io.BufferedReader:
        """Return a seekable, buffered reader of the bytes ``[start, end)``."""
        return io.BufferedReader(_Reader(self, max(0, start), min(end, len(self))))


class _Reader(io.RawIOBase):
    """A seekable reader over part of a :class:`Content`: ``read(n)`` gives n bytes
    (fewer only at the end), copied once out of the pieces."""

    def __init__(self, content: Content, start: int, end: int) -> None:
        super().__init__()
        self._content: Content | None = content
        self._start = start
        self._length = max(0, end - start)
        self._pos = 0

    def _open_content(self) -> Content:
        if self._content is None:
            raise ValueError("I/O operation on closed file")
        return self._content

    def close(self) -> None:
        self._content = None
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._open_content()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Seek as ``io.BytesIO`` does: a negative position from the start is refused,
        one relative to the current position or the end stops at the start."""
        self._open_content()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if whence == io.SEEK_SET and offset < 0:
            raise ValueError(f"negative seek value {offset}")
        self._pos = max(0, base + offset)
        return self._pos

    def _span(self, size: int | None) -> tuple[int, int]:
        left = max(0, self._length - self._pos)
        n = left if size is None or size < 0 else min(size, left)
        lo = self._start + self._pos
        self._pos += n
        return lo, lo + n

    def read(self, size: int | None = -1) -> bytes:
        content = self._open_content()
        lo, hi = self._span(size)
        return content.range(lo, hi) if hi > lo else b""

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        content = self._open_content()
        view = memoryview(buffer).cast("B")
        lo, hi = self._span(len(view))
        n = 0
        for piece in content.views(lo, hi):
            view[n : n + len(piece)] = piece
            n += len(piece)
        return n
