"""What keeps Cached coherent, shared by both forms, and the sync form's own seams.

Coherence: writes and deletes of one path are serialised (a striped lock) and bump
the path's generation; a read that missed fills the front only if no write started
since it began reading the back. ``Tee`` keeps what a write streams through, ``Capture``
what a reader reads from its start, each within a limit. ``held``, ``teed`` and
``filling_reader`` are the sync side's ways to take the locks, tee a write and fill
from a reader; the async side's are in ``storager/aio/combinators/_cache_coherence.py``.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, cast

from storager._object import Multipart
from storager._protocols import WriteData
from storager._streams import iter_chunks

__all__ = [
    "Capture",
    "Coherence",
    "Tee",
    "filling_reader",
    "held",
    "teed",
    "upload_paths",
]

_STRIPES = 64


class Coherence:
    """What keeps a cache coherent: per-path locks, generations, the LRU and its bytes.

    Both forms of Cached share it: a write or delete takes the path's lock and
    bumps its generation; a read that missed fills the front only if the generation
    is the one it saw when it started (``fresh``), under the same lock.
    """

    def __init__(self, max_bytes: int | None, max_object: int) -> None:
        self.max_bytes = max_bytes
        self.max_object = max_object
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._meta = threading.Lock()
        self._generation: dict[str, int] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._cached_bytes = 0
        self.hits = 0
        self.misses = 0

    def lock_for(self, path: str) -> threading.Lock:
        """Return the lock that serialises changes to ``path``."""
        return self._locks[hash(path) % _STRIPES]

    def locks_for(self, paths: Iterable[str]) -> list[threading.Lock]:
        """Return the locks of ``paths``, each once, in the one order every caller takes."""
        unique = {id(self.lock_for(p)): self.lock_for(p) for p in paths}
        return [lock for _, lock in sorted(unique.items())]

    def bump(self, paths: Iterable[str]) -> None:
        """Start a change of ``paths``: reads begun before it must not fill the front."""
        with self._meta:
            for p in paths:
                self._generation[p] = self._generation.get(p, 0) + 1

    def hit(self, path: str) -> None:
        """Count a read served by the front."""
        with self._meta:
            if path in self._lru:
                self._lru.move_to_end(path)
            self.hits += 1

    def miss(self, path: str) -> int:
        """Count a read the front missed; return the generation it starts from."""
        with self._meta:
            self.misses += 1
            return self._generation.get(path, 0)

    def fresh(self, path: str, generation: int) -> bool:
        """Whether no change of ``path`` started since ``generation`` (lock held)."""
        return self._generation.get(path, 0) == generation

    def cacheable(self, size: int) -> bool:
        """Whether an object of ``size`` bytes may go to the front."""
        return size <= self.max_object and (self.max_bytes is None or size <= self.max_bytes)

    def dropped(self, path: str) -> None:
        """Record that ``path`` left the front."""
        with self._meta:
            size = self._lru.pop(path, None)
            if size is not None:
                self._cached_bytes -= size

    def put(self, path: str, size: int) -> list[str]:
        """Record that ``path`` (``size`` bytes) is in front; return the paths to evict."""
        evict: list[str] = []
        with self._meta:
            old = self._lru.pop(path, None)
            if old is not None:
                self._cached_bytes -= old
            self._lru[path] = size
            self._cached_bytes += size
            if self.max_bytes is not None:
                while self._cached_bytes > self.max_bytes and len(self._lru) > 1:
                    victim, victim_size = self._lru.popitem(last=False)
                    self._cached_bytes -= victim_size
                    evict.append(victim)
        return evict


class Tee:
    """Pass chunks through, keeping a copy while the total stays within ``limit``."""

    def __init__(self, chunks: Iterable[Any], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self._kept: list[bytes] | None = []
        self._total = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            piece = bytes(chunk)
            self.keep(piece)
            yield piece

    def keep(self, piece: bytes) -> None:
        """Count ``piece`` and keep a copy while the total stays within the limit."""
        self._total += len(piece)
        if self._kept is not None:
            if self._total > self._limit:
                self._kept = None
            else:
                self._kept.append(piece)

    def captured(self) -> bytes | None:
        return None if self._kept is None else b"".join(self._kept)


class Capture:
    """What a reader read from its start, kept up to ``limit`` bytes to fill the front.

    A seek elsewhere, or passing ``limit``, drops what was kept, so memory stays within
    ``limit``. The readers of both forms feed it what each read returned.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: bytearray | None = bytearray()

    def seeked(self, position: int) -> None:
        """Note a seek to ``position``."""
        if self._kept is not None and position != len(self._kept):
            self._kept = None

    def took(self, data: bytes, asked: int) -> bytes | None:
        """Note a read of ``asked`` bytes that returned ``data``; at the end, return it all.

        The whole object is returned once, when an empty read marks its end.
        """
        if self._kept is None:
            return None
        if not data and asked > 0:
            kept, self._kept = bytes(self._kept), None
            return kept
        if len(self._kept) + len(data) > self._limit:
            self._kept = None
        else:
            self._kept += data
        return None

    def drop(self) -> None:
        """Keep nothing more."""
        self._kept = None


def upload_paths(multipart: Multipart, work_dir: str) -> list[str]:
    """The paths a completed upload makes stale in front.

    The upload's path is the back's store-absolute one; the caller may have read the
    object by its path relative to ``work_dir`` too: both.
    """
    paths = [multipart.path]
    if multipart.path.startswith(work_dir) and multipart.path != work_dir:
        paths.append(multipart.path[len(work_dir) :])
    return paths


@contextlib.contextmanager
def held(locks: Sequence[threading.Lock]) -> Iterator[None]:
    """Hold ``locks`` in the order given."""
    taken: list[threading.Lock] = []
    try:
        for lock in locks:
            lock.acquire()
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()


def teed(path: str, data: WriteData, limit: int) -> tuple[Tee, WriteData]:
    """Return a Tee over a write's stream and the data to hand on through it."""
    tee = Tee(iter_chunks("write", "cached", path, data), limit)
    return tee, tee


def filling_reader(
    inner: BinaryIO, capture: Capture, complete: Callable[[bytes], None]
) -> BinaryIO:
    """Return a reader of ``inner`` that calls ``complete`` after a whole sequential read."""
    return cast(BinaryIO, io.BufferedReader(_FillingReader(inner, capture, complete)))


class _FillingReader(io.RawIOBase):
    """Read through ``inner``; ``complete`` gets the object after a whole sequential read."""

    def __init__(
        self, inner: BinaryIO, capture: Capture, complete: Callable[[bytes], None]
    ) -> None:
        super().__init__()
        self._inner = inner
        self._capture = capture
        self._complete = complete

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def tell(self) -> int:
        return self._inner.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._inner.seek(offset, whence)
        self._capture.seeked(position)
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        n = len(data)
        view[:n] = data
        whole = self._capture.took(data, len(view))
        if whole is not None:
            self._complete(whole)
        return n

    def close(self) -> None:
        if not self.closed:
            self._capture.drop()
            self._inner.close()
        super().close()
