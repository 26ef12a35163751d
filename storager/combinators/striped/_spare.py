"""The part of a degraded stripe a reader's request did not cover, kept for the next one.

A request that covers part of a stripe whose data fragments cannot all be read (a
backend down, a fragment never written) cannot rebuild the missing ones from the
fragments it covers alone. ``_in_place.read_in_place`` then reads that stripe whole:
the fragments the request covers into the caller's buffer, the others into the
reader's spare stripe, and rebuilds each missing one wherever it belongs. The next
request (in a sequential read, the rest of the stripe) is served from the spare by a
copy, instead of reading and rebuilding the stripe again: a degraded read of
half-stripes then costs about what one of whole stripes does
(``benchmarks/striped.py``).

The spare holds one stripe at a time, in a buffer reused from stripe to stripe and
mapped on its own (page-aligned: the kernel copies a fragment into it at about twice
the rate it copies into a ``bytearray``'s 16-byte-aligned memory here,
``benchmarks/README.md``). Only fragments read and checked, or rebuilt from checked
ones (and checked themselves where the writer recorded a digest), are held. A
request takes the spare only for a stripe it ends inside, short of the reader's
end: the one a sequential reader goes on with.

The spare's and the scratch's buffers are private mappings from the store's
:class:`PagePool`, and go back to it when the reader closes: a fresh mapping costs a
page fault and a zeroed page per 4 KiB on first touch (up to 24 MiB per degraded
reader at RS(4,2) and 4 MiB chunks), and a shared one (``mmap``'s default) costs more
per fault. Both together made a degraded read of 256 MiB 7-13% faster in an
interleaved A/B (``benchmarks/README.md``, "Session 11"). The pool keeps at most one
reader's worth (a stripe and its parity), let go when the store closes.
"""

from __future__ import annotations

import collections
import mmap
import threading

__all__ = ["PagePool", "Scratch", "Spare"]

#: Anonymous memory of this process alone (not shared with a child it forks).
_PRIVATE = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)


class PagePool:
    """Page-aligned buffers readers take and give back, some kept for the next reader.

    Args:
        keep: At most this many bytes of free buffers stay mapped between readers
            (thread-safe; ``clear`` lets them all go).

    ``give`` never waits: a reader closed by the garbage collector may give back on a
    thread inside ``take`` (holding the lock). What it gives lands in a queue that the
    next holder of the lock sorts in.
    """

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._free: list[mmap.mmap] = []
        #: Given back, not sorted in yet (``deque.extend`` is atomic: no lock needed).
        self._returned: collections.deque[mmap.mmap] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        #: Buffers mapped afresh (not reused), for tests and benchmarks.
        self.mapped = 0

    def take(self, size: int) -> mmap.mmap:
        """Return a buffer of at least ``size`` bytes (any content)."""
        with self._lock:
            self._sort_in()
            fits = [b for b in self._free if len(b) >= size]
            if fits:
                buffer = min(fits, key=len)
                self._free.remove(buffer)
                return buffer
            self.mapped += 1
        if _PRIVATE:
            return mmap.mmap(-1, size, flags=_PRIVATE)
        return mmap.mmap(-1, size)  # pragma: no cover - platforms without MAP_PRIVATE

    def give(self, buffers: list[mmap.mmap]) -> None:
        """Take back buffers no one uses any more; keep what fits, largest first."""
        self._returned.extend(buffers)
        if self._lock.acquire(blocking=False):  # else the holder, or the next, sorts in
            try:
                self._sort_in()
            finally:
                self._lock.release()

    def clear(self) -> None:
        """Let every free buffer go, and any given back later (the store is closed)."""
        with self._lock:
            self._closed = True
            self._sort_in()

    def _sort_in(self) -> None:
        """Keep, of the free and returned buffers, what fits in ``keep`` (under the lock)."""
        returned: list[mmap.mmap] = []
        while self._returned:
            returned.append(self._returned.popleft())
        if self._closed:
            self._free = []
            return
        if not returned:
            return
        pooled = sorted([*self._free, *returned], key=len, reverse=True)
        self._free = []
        kept = 0
        for buffer in pooled:
            if kept + len(buffer) <= self._keep:
                self._free.append(buffer)
                kept += len(buffer)


class Spare:
    """One stripe's checked data fragments that a request did not ask for."""

    __slots__ = ("_buffer", "_held", "_pool", "index")

    def __init__(self, pool: PagePool) -> None:
        self._pool = pool
        self._buffer: mmap.mmap | None = None
        #: Which stripe the spare was last taken for (None: none since ``forget``).
        self.index: int | None = None
        #: ``(lo, hi, view)``: the object's bytes ``[lo, hi)`` and where they sit in the buffer.
        self._held: list[tuple[int, int, memoryview]] = []

    def take(self, index: int, size: int) -> memoryview:
        """Return the buffer (``size`` bytes) for stripe ``index``; forget what was held."""
        self.forget()
        if self._buffer is None or len(self._buffer) < size:
            old, self._buffer = self._buffer, None  # never given back twice
            if old is not None:
                self._pool.give([old])
            self._buffer = self._pool.take(size)
        self.index = index
        return memoryview(self._buffer)[:size]

    def hold(self, lo: int, view: memoryview) -> None:
        """Keep ``view`` (checked bytes of the buffer) as the object's bytes from ``lo``."""
        self._held.append((lo, lo + len(view), view))

    def copy_into(self, view: memoryview, start: int) -> list[tuple[int, int]]:
        """Copy what is held of the object bytes from ``start`` into ``view``.

        Returns the object spans ``(lo, hi)`` copied.
        """
        end = start + len(view)
        copied: list[tuple[int, int]] = []
        for lo, hi, held in self._held:
            a, b = max(lo, start), min(hi, end)
            if a < b:
                view[a - start : b - start] = held[a - lo : b - lo]
                copied.append((a, b))
        return copied

    @property
    def holding(self) -> int | None:
        """The stripe whose fragments are held, if any are."""
        return self.index if self._held else None

    def forget(self) -> None:
        """Hold nothing (the buffer is kept for the next stripe)."""
        self.index = None
        self._held = []

    def release(self) -> None:
        """Hold nothing and give the buffer back (the reader is closed)."""
        self.forget()
        if self._buffer is not None:
            self._pool.give([self._buffer])
        self._buffer = None


class Scratch:
    """Page-aligned buffers one request reads parity fragments into, reused by the next.

    At most ``keep`` buffers stay between requests (a request over many stripes
    takes more, given back to the system once it is done).
    """

    __slots__ = ("_free", "_keep", "_pool", "_taken")

    def __init__(self, pool: PagePool, keep: int) -> None:
        self._pool = pool
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._taken: list[mmap.mmap] = []

    def take(self, size: int) -> memoryview:
        """Return a buffer of ``size`` bytes (any content) until ``reclaim``."""
        for n, buffer in enumerate(self._free):
            if len(buffer) >= size:
                del self._free[n]
                break
        else:
            buffer = self._pool.take(size)
        self._taken.append(buffer)
        return memoryview(buffer)[:size]

    def reclaim(self) -> None:
        """Free every buffer taken: the caller no longer uses (or lends) any of them."""
        free = self._free + self._taken
        self._free, self._taken = free[: self._keep], []
        self._pool.give(free[self._keep :])

    def release(self) -> None:
        """Give every free buffer back (the reader is closed)."""
        free, self._free = self._free, []
        self._pool.give(free)
