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

from storager._streams import RangeReader

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
        start, end = max(0, start), min(end, len(self))

        def fetch(pos: int, size: int) -> bytes:
            return self.range(start + pos, start + pos + size)

        def fetch_into(pos: int, view: memoryview) -> int:
            n = 0
            for piece in self.views(start + pos, start + pos + len(view)):
                view[n : n + len(piece)] = piece
                n += len(piece)
            return n

        return io.BufferedReader(_SeeksAsBytesIO(fetch, max(0, end - start), fetch_into=fetch_into))


class _SeeksAsBytesIO(RangeReader):
    """A :class:`RangeReader` that seeks as ``io.BytesIO`` does (the memory service's
    one-piece objects are read through one): a negative position from the start is
    refused, one relative to the current position or the end stops at the start."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset < 0:
            raise ValueError(f"negative seek value {offset}")
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._length}[whence]
        return super().seek(max(0, base + offset))
