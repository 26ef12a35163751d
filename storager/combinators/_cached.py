"""Cached: a fast front store in front of a slow back store.

Reads come from the front when it holds the object, and fill it from the back on a
miss. Writes go through: to the back, then the front. Deletes remove from both. The
back is the source of truth: ``stat`` and ``list`` ask it.

Coherence: writes and deletes of one path are serialised (a striped lock) and bump
the path's generation; a read that missed fills the front only if no write started
since it began reading the back, so a slow reader never puts an old version in front
of a newer one.

``open_reader`` on a miss streams from the back and fills the front after a complete
read: while the caller reads from the start without seeking, the bytes are kept (at
most ``max_object_bytes``), and when it reaches the end they go to the front. Memory
stays bounded by that limit; a reader that seeks, stops early or passes the limit
fills nothing. (Teeing into a concurrent front write would start filling sooner but
leave a half-written front object when the caller stops early.)

Links: when the back is a Linker, a path that is a link is never cached, since a
write to its target would leave the cached copy stale; so a miss that would fill
costs one ``stat`` of the back. The Cached is not a Presigner: a PUT through a
signed URL would change the back behind the front's back.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar, cast

from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Multipart, Object, ObjectMode, Part
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Segmenter,
    Storager,
    WriteData,
)
from storager._streams import iter_chunks
from storager.combinators._base import (
    Wrapper,
    call_child,
    capabilities_of,
    meet_capability,
    ops_of,
    prime,
    served_by,
)
from storager.combinators._trace import span, tracing

__all__ = ["Cached", "Capture", "Coherence", "Tee"]

T = TypeVar("T")
logger = logging.getLogger("storager.combinators.cached")
_STRIPES = 64
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})


class Coherence:
    """What keeps a cache coherent: per-path locks, generations, the LRU and its bytes.

    Cached and its async twin share it: a write or delete takes the path's lock and
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


class Cached(Wrapper):
    """Serve reads from ``front``, filled from ``back``; keep both coherent on writes.

    Args:
        front: The cache (memory, a local disk...).
        back: The source of truth.
        max_bytes: Evict least recently used objects from the front when the
            objects this Cached put there exceed this total; ``None``: no limit.
        max_object_bytes: Objects larger than this are not cached (a stream
            written through is buffered up to this size to fill the front).

    The capabilities are the back's Copier, Mover, Segmenter, Appender, Direr and
    Linker: each runs on the back, then drops the paths it changed from the front.
    Never a Presigner (see the module docstring).
    """

    combinator = "cached"

    def __init__(
        self,
        front: Storager,
        back: Storager,
        *,
        max_bytes: int | None = None,
        max_object_bytes: int = 8 << 20,
    ) -> None:
        if not isinstance(front, Storager) or not isinstance(back, Storager):
            raise InvalidArgumentError("new", "cached", "", "front and back must be Storagers")
        if max_bytes is not None and max_bytes < 0:
            raise InvalidArgumentError("new", "cached", "", "max_bytes must not be negative")
        self.front = front
        self.back = back
        self._max_bytes = max_bytes
        self._max_object = max_object_bytes
        self._coherence = Coherence(max_bytes, max_object_bytes)

    @property
    def hits(self) -> int:
        """Reads served by the front, for observation."""
        return self._coherence.hits

    @property
    def misses(self) -> int:
        """Reads served by the back, for observation."""
        return self._coherence.misses

    @classmethod
    def _allowed_capabilities(
        cls, front: object = None, back: object = None, *a: Any, **k: Any
    ) -> frozenset[type]:
        return capabilities_of(back) & _SUPPORTED

    def children(self) -> Mapping[str, Storager]:
        return {"front": self.front, "back": self.back}

    def describe_label(self) -> str:
        limit = f" max_bytes={self._max_bytes}" if self._max_bytes is not None else ""
        return f"cached{limit}"

    def metadata(self) -> Any:
        meta = self.back.metadata()
        caps = meet_capability([meta.capability], ops_of(capabilities_of(self)))
        return type(meta)("cached", meta.name, meta.work_dir, caps)

    # -- coherence ----------------------------------------------------------------------

    def _lock_for(self, path: str) -> threading.Lock:
        return self._coherence.lock_for(path)

    def _drop(self, path: str) -> None:
        """Remove ``path`` from the front (called with its stripe lock held)."""
        self.front.delete(path)
        self._coherence.dropped(path)

    def _put(self, path: str, data: bytes) -> None:
        """Store ``data`` in the front (stripe lock held), then evict past ``max_bytes``."""
        self.front.write(path, data)
        for victim in self._coherence.put(path, len(data)):
            self.front.delete(victim)

    def _mutate(self, op: str, paths: list[str], fn: Callable[[], T]) -> T:
        """Run a mutation on the back, then drop ``paths`` from the front."""
        locks = self._coherence.locks_for(paths)
        for lock in locks:
            lock.acquire()
        try:
            self._coherence.bump(paths)
            result = fn()  # a failed back write leaves the front untouched
            for p in paths:
                self._drop(p)
            return result
        finally:
            for lock in reversed(locks):
                lock.release()

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span(self.describe_label(), op, path) if tracing() else contextlib.nullcontext()

    # -- Storager -----------------------------------------------------------------------

    def read(self, path: str, **pairs: Any) -> bytes:
        with self._traced("read", path):
            try:
                data = call_child(self.front, "read", path, lambda s: s.read(path, **pairs))
            except NotFoundError:
                pass
            else:
                self._coherence.hit(path)
                served_by.set("front")
                return data
            generation = self._coherence.miss(path)
            if pairs:  # a range or a callback: serve from the back, cache nothing
                served_by.set("back")
                return call_child(self.back, "read", path, lambda s: s.read(path, **pairs))
            data = call_child(self.back, "read", path, lambda s: s.read(path))
            served_by.set("back")
            self._fill(path, data, generation)
            return data

    def _fill(self, path: str, data: bytes, generation: int) -> None:
        """Put what a missed read got from the back in front, unless it is stale now."""
        if not self._coherence.cacheable(len(data)):
            return
        if isinstance(self.back, Linker) and ObjectMode.LINK in self.back.stat(path).mode:
            return
        with self._lock_for(path):
            if self._coherence.fresh(path, generation):
                self._put(path, data)

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        with self._traced("open_reader", path):
            try:
                reader = self.front.open_reader(path, **pairs)
                self._coherence.hit(path)
                served_by.set("front")
                return reader
            except NotFoundError:
                pass
            served_by.set("back")
            generation = self._coherence.miss(path)
            reader = call_child(
                self.back, "open_reader", path, lambda s: s.open_reader(path, **pairs)
            )
            if pairs:  # a range: serve it, cache nothing
                return reader

            def complete(data: bytes) -> None:
                try:
                    self._fill(path, data, generation)
                except Exception:
                    logger.warning("cached: filling the front with %s failed", path)

            raw = _FillingReader(reader, self._max_object, complete)
            return cast(BinaryIO, io.BufferedReader(raw))

    def stat(self, path: str, **pairs: Any) -> Object:
        with self._traced("stat", path):
            return call_child(self.back, "stat", path, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        with self._traced("list", path):
            return call_child(self.back, "list", path, lambda s: prime(s.list(path, **pairs)))

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        with self._traced("write", path), self._lock_for(path):
            self._coherence.bump([path])
            if isinstance(data, bytes | bytearray | memoryview):
                obj = self.back.write(path, data, **pairs)
                self._after_write(path, bytes(data))
                return obj
            tee = Tee(iter_chunks("write", "cached", path, data), self._max_object)
            obj = self.back.write(path, tee, **pairs)
            self._after_write(path, tee.captured())
            return obj

    def _after_write(self, path: str, data: bytes | None) -> None:
        if data is not None and len(data) <= self._max_object:
            try:
                self._put(path, data)
                return
            except Exception:
                logger.warning("cached: filling the front with %s failed; dropping it", path)
        # The front must not keep an older version: if this fails too, the caller hears.
        self._drop(path)

    def delete(self, path: str, **pairs: Any) -> None:
        with self._traced("delete", path):
            self._mutate("delete", [path], lambda: self.back.delete(path, **pairs))


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
    ``limit``. Cached's reader and its async twin's feed it what each read returned.
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


class _FillingReader(io.RawIOBase):
    """Read through ``inner``; ``complete`` gets the object after a whole sequential read."""

    def __init__(self, inner: BinaryIO, limit: int, complete: Callable[[bytes], None]) -> None:
        super().__init__()
        self._inner = inner
        self._capture = Capture(limit)
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


class _CachedCopier(Cached, Copier):
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("copy", src):
            self._mutate("copy", [dst], lambda: cast(Copier, self.back).copy(src, dst, **pairs))


class _CachedMover(Cached, Mover):
    def move(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("move", src):
            self._mutate("move", [src, dst], lambda: cast(Mover, self.back).move(src, dst, **pairs))


class _CachedAppender(Cached, Appender):
    def append(self, path: str, data: WriteData, **pairs: Any) -> Object:
        with self._traced("append", path):
            return self._mutate(
                "append", [path], lambda: cast(Appender, self.back).append(path, data, **pairs)
            )


class _CachedDirer(Cached, Direr):
    def create_dir(self, path: str, **pairs: Any) -> Object:
        with self._traced("create_dir", path):
            return cast(Direr, self.back).create_dir(path, **pairs)


class _CachedSegmenter(Cached, Segmenter):
    """Uploads run on the back; completing one drops its path from the front."""

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        with self._traced("create_multipart", path):
            return cast(Segmenter, self.back).create_multipart(path, **pairs)

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        with self._traced("write_multipart", multipart.path):
            return cast(Segmenter, self.back).write_multipart(multipart, number, data, **pairs)

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        paths = upload_paths(multipart, self.back.metadata().work_dir)
        with self._traced("complete_multipart", multipart.path):
            return self._mutate(
                "complete_multipart",
                paths,
                lambda: cast(Segmenter, self.back).complete_multipart(multipart, parts, **pairs),
            )

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        with self._traced("abort_multipart", multipart.path):
            cast(Segmenter, self.back).abort_multipart(multipart, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        with self._traced("list_multipart", multipart.path):
            return prime(cast(Segmenter, self.back).list_multipart(multipart, **pairs))


class _CachedLinker(Cached, Linker):
    def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        with self._traced("create_link", path):
            return self._mutate(
                "create_link",
                [path],
                lambda: cast(Linker, self.back).create_link(path, target, **pairs),
            )


def upload_paths(multipart: Multipart, work_dir: str) -> list[str]:
    """The paths a completed upload makes stale in front.

    The upload's path is the back's store-absolute one; the caller may have read the
    object by its path relative to ``work_dir`` too: both.
    """
    paths = [multipart.path]
    if multipart.path.startswith(work_dir) and multipart.path != work_dir:
        paths.append(multipart.path[len(work_dir) :])
    return paths


Cached._capability_mixins = {
    Copier: _CachedCopier,
    Mover: _CachedMover,
    Segmenter: _CachedSegmenter,
    Appender: _CachedAppender,
    Direr: _CachedDirer,
    Linker: _CachedLinker,
}
