"""An object's bytes in memory: one buffer, or the pieces it arrived in, never joined.

A completed multipart upload is its parts' pieces as they were received, and an
append adds a piece: neither copies the bytes already held. Joining a 256 MiB
upload on Complete cost a copy into 256 MiB of fresh pages, which the kernel maps
and zeroes, a large part of the gateway's CPU for such an upload
(``benchmarks/README.md``). Readers and ranged reads take views of the pieces; only a
read of the whole of a many-piece object joins them (into the bytes it returns).
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["Content"]


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

    def reader(self, start: int, end: int) -> io.RawIOBase:
        """Return a seekable reader of the bytes ``[start, end)``."""
        return _Reader(self, max(0, start), min(end, len(self)))


class _Reader(io.RawIOBase):
    """A seekable reader over part of a :class:`Content`: ``read(n)`` gives n bytes
    (fewer only at the end), copied once out of the pieces."""

    def __init__(self, content: Content, start: int, end: int) -> None:
        super().__init__()
        self._content = content
        self._start = start
        self._length = max(0, end - start)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def _span(self, size: int | None) -> tuple[int, int]:
        left = max(0, self._length - self._pos)
        n = left if size is None or size < 0 else min(size, left)
        lo = self._start + self._pos
        self._pos += n
        return lo, lo + n

    def read(self, size: int | None = -1) -> bytes:
        lo, hi = self._span(size)
        return self._content.range(lo, hi) if hi > lo else b""

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        lo, hi = self._span(len(view))
        n = 0
        for piece in self._content.views(lo, hi):
            view[n : n + len(piece)] = piece
            n += len(piece)
        return n
