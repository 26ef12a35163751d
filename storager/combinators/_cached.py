"""Cached: a fast front store in front of a slow back store.

Reads come from the front when it holds the object, and fill it from the back on a
miss. Writes go through: to the back, then the front. Deletes remove from both. The
back is the source of truth: ``stat`` and ``list`` ask it.

Coherence: writes and deletes of one path are serialised (a striped lock) and bump
the path's generation; a read that missed fills the front only if no write started
since it began reading the back, so a slow reader never puts an old version in front
of a newer one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, TypeVar, cast

from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Object
from storager._protocols import Appender, Copier, Direr, Mover, Storager, WriteData
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

__all__ = ["Cached"]

T = TypeVar("T")
logger = logging.getLogger("storager.combinators.cached")
_STRIPES = 64
_SUPPORTED = frozenset({Copier, Mover, Appender, Direr})


class Cached(Wrapper):
    """Serve reads from ``front``, filled from ``back``; keep both coherent on writes.

    Args:
        front: The cache (memory, a local disk...).
        back: The source of truth.
        max_bytes: Evict least recently used objects from the front when the
            objects this Cached put there exceed this total; ``None``: no limit.
        max_object_bytes: Objects larger than this are not cached (a stream
            written through is buffered up to this size to fill the front).

    The capabilities are the back's Copier, Mover, Appender and Direr: each runs on
    the back, then drops the paths it changed from the front.
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
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._meta = threading.Lock()
        self._generation: dict[str, int] = {}
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._cached_bytes = 0
        #: Reads served by the front and by the back, for observation.
        self.hits = 0
        self.misses = 0

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
        return self._locks[hash(path) % _STRIPES]

    def _bump(self, paths: Iterable[str]) -> None:
        with self._meta:
            for p in paths:
                self._generation[p] = self._generation.get(p, 0) + 1

    def _drop(self, path: str) -> None:
        """Remove ``path`` from the front (called with its stripe lock held)."""
        self.front.delete(path)
        with self._meta:
            size = self._lru.pop(path, None)
            if size is not None:
                self._cached_bytes -= size

    def _put(self, path: str, data: bytes) -> None:
        """Store ``data`` in the front (stripe lock held), then evict past ``max_bytes``."""
        self.front.write(path, data)
        evict: list[str] = []
        with self._meta:
            old = self._lru.pop(path, None)
            if old is not None:
                self._cached_bytes -= old
            self._lru[path] = len(data)
            self._cached_bytes += len(data)
            if self._max_bytes is not None:
                while self._cached_bytes > self._max_bytes and len(self._lru) > 1:
                    victim, size = self._lru.popitem(last=False)
                    self._cached_bytes -= size
                    evict.append(victim)
        for victim in evict:
            self.front.delete(victim)

    def _mutate(self, op: str, paths: list[str], fn: Callable[[], T]) -> T:
        """Run a mutation on the back, then drop ``paths`` from the front."""
        locks = sorted({id(self._lock_for(p)): self._lock_for(p) for p in paths}.items())
        for _, lock in locks:
            lock.acquire()
        try:
            self._bump(paths)
            result = fn()  # a failed back write leaves the front untouched
            for p in paths:
                self._drop(p)
            return result
        finally:
            for _, lock in reversed(locks):
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
                with self._meta:
                    if path in self._lru:
                        self._lru.move_to_end(path)
                    self.hits += 1
                served_by.set("front")
                return data
            with self._meta:
                self.misses += 1
                generation = self._generation.get(path, 0)
            if pairs:  # a range or a callback: serve from the back, cache nothing
                served_by.set("back")
                return call_child(self.back, "read", path, lambda s: s.read(path, **pairs))
            data = call_child(self.back, "read", path, lambda s: s.read(path))
            served_by.set("back")
            if len(data) <= self._max_object and (
                self._max_bytes is None or len(data) <= self._max_bytes
            ):
                with self._lock_for(path):
                    if self._generation.get(path, 0) == generation:
                        self._put(path, data)
            return data

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        with self._traced("open_reader", path):
            try:
                reader = self.front.open_reader(path, **pairs)
                served_by.set("front")
                return reader
            except NotFoundError:
                served_by.set("back")
                return call_child(
                    self.back, "open_reader", path, lambda s: s.open_reader(path, **pairs)
                )

    def stat(self, path: str, **pairs: Any) -> Object:
        with self._traced("stat", path):
            return call_child(self.back, "stat", path, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        with self._traced("list", path):
            return call_child(self.back, "list", path, lambda s: prime(s.list(path, **pairs)))

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        with self._traced("write", path), self._lock_for(path):
            self._bump([path])
            if isinstance(data, bytes | bytearray | memoryview):
                obj = self.back.write(path, data, **pairs)
                self._after_write(path, bytes(data))
                return obj
            tee = _Tee(iter_chunks("write", "cached", path, data), self._max_object)
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


class _Tee:
    """Pass chunks through, keeping a copy while the total stays within ``limit``."""

    def __init__(self, chunks: Iterator[Any], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self._kept: list[bytes] | None = []
        self._total = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            piece = bytes(chunk)
            self._total += len(piece)
            if self._kept is not None:
                if self._total > self._limit:
                    self._kept = None
                else:
                    self._kept.append(piece)
            yield piece

    def captured(self) -> bytes | None:
        return None if self._kept is None else b"".join(self._kept)


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


Cached._capability_mixins = {
    Copier: _CachedCopier,
    Mover: _CachedMover,
    Appender: _CachedAppender,
    Direr: _CachedDirer,
}
