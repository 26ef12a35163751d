"""Cached: a fast front store in front of a slow back store.

Written once: ``storager/aio/combinators/_cached.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_cached.py`` from it. The coherence
rules are ``Coherence``'s (``storager/combinators/_cache_coherence.py``), the same in
both forms; taking its locks, teeing a write and filling from a reader are each form's
own seams.

Reads come from the front when it holds the object, and fill it from the back on a
miss. Writes go through: to the back, then the front. Deletes remove from both. The
back is the source of truth: ``stat`` and ``list`` ask it.

Coherence: writes and deletes of one path are serialised (a striped lock) and bump
the path's generation; a read that missed fills the front only if no write started
since it began reading the back, so a slow reader never puts an old version in front
of a newer one. The locks are thread locks, so this holds across threads (and, on
the async side, across event loops in several threads, without blocking a loop).

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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import (
    AsyncAppender,
    AsyncCopier,
    AsyncDirer,
    AsyncLinker,
    AsyncMover,
    AsyncSegmenter,
    AsyncStorager,
)
from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Multipart, Object, ObjectMode, Part, StorageMeta
from storager._protocols import Appender, Copier, Direr, Linker, Mover, Segmenter
from storager.aio.combinators._base import (
    AsyncWrapper,
    async_capabilities_of,
    call_child,
    call_listing,
)
from storager.aio.combinators._cache_coherence import (
    async_filling_reader,
    async_held,
    async_teed,
)
from storager.combinators._base import meet_capability, ops_of, served_by
from storager.combinators._cache_coherence import Capture, Coherence, upload_paths
from storager.combinators._trace import NO_SPAN, span, tracing

__all__ = ["AsyncCached"]

T = TypeVar("T")
logger = logging.getLogger("storager.combinators.cached")

#: The back's capabilities a Cached offers.
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})


class AsyncCached(AsyncWrapper):
    """Serve reads from ``front``, filled from ``back``; keep both coherent on writes.

    Args:
        front: The cache (memory, a local disk...).
        back: The source of truth.
        max_bytes: Evict least recently used objects from the front when the
            objects this Cached put there exceed this total; ``None``: no limit.
        max_object_bytes: Objects larger than this are not cached (a stream
            written through is buffered up to this size to fill the front).

    The capabilities are the back's Copier, Mover, Segmenter, Appender, Direr and
    Linker: each runs on the back, then drops the paths it changed from the front
    (uploads run on the back; completing one drops its path). A link is never
    cached. Never a Presigner (see the module docstring).
    """

    combinator = "cached"

    def __init__(
        self,
        front: AsyncStorager,
        back: AsyncStorager,
        *,
        max_bytes: int | None = None,
        max_object_bytes: int = 8 << 20,
    ) -> None:
        if not isinstance(front, AsyncStorager) or not isinstance(back, AsyncStorager):
            raise InvalidArgumentError("new", "cached", "", "front and back must be AsyncStoragers")
        if max_bytes is not None and max_bytes < 0:
            raise InvalidArgumentError("new", "cached", "", "max_bytes must not be negative")
        self.front = front
        self.back = back
        self._max_bytes = max_bytes
        self._coherence = Coherence(max_bytes, max_object_bytes)

    @classmethod
    def _allowed_capabilities(
        cls, front: object = None, back: object = None, *a: Any, **k: Any
    ) -> frozenset[type]:
        return async_capabilities_of(back) & _SUPPORTED

    @property
    def hits(self) -> int:
        """Reads served by the front, for observation."""
        return self._coherence.hits

    @property
    def misses(self) -> int:
        """Reads served by the back, for observation."""
        return self._coherence.misses

    def children(self) -> Mapping[str, AsyncStorager]:
        return {"front": self.front, "back": self.back}

    def describe_label(self) -> str:
        limit = f" max_bytes={self._max_bytes}" if self._max_bytes is not None else ""
        return f"cached{limit}"

    def metadata(self) -> StorageMeta:
        meta = self.back.metadata()
        caps = meet_capability([meta.capability], ops_of(async_capabilities_of(self)))
        return StorageMeta("cached", meta.name, meta.work_dir, caps)

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span(self.describe_label(), op, path) if tracing() else NO_SPAN

    # -- coherence ----------------------------------------------------------------------

    async def _drop(self, path: str) -> None:
        """Remove ``path`` from the front (called with its lock held)."""
        await self.front.delete(path)
        self._coherence.dropped(path)

    async def _put(self, path: str, data: bytes) -> None:
        """Store ``data`` in the front (its lock held), then evict past ``max_bytes``."""
        await self.front.write(path, data)
        for victim in self._coherence.put(path, len(data)):
            await self.front.delete(victim)

    async def _mutate(self, paths: list[str], fn: Callable[[], Awaitable[T]]) -> T:
        """Run a change on the back, then drop ``paths`` from the front."""
        async with async_held(self._coherence.locks_for(paths)):
            self._coherence.bump(paths)
            result = await fn()  # a failed back change leaves the front untouched
            for p in paths:
                await self._drop(p)
            return result

    async def _fill(self, path: str, data: bytes, generation: int) -> None:
        """Put what a missed read got from the back in front, unless it is stale now."""
        if not self._coherence.cacheable(len(data)):
            return
        if (
            isinstance(self.back, AsyncLinker)
            and ObjectMode.LINK in (await self.back.stat(path)).mode
        ):
            return
        async with async_held([self._coherence.lock_for(path)]):
            if self._coherence.fresh(path, generation):
                await self._put(path, data)

    async def _after_write(self, path: str, data: bytes | None) -> None:
        if data is not None and len(data) <= self._coherence.max_object:
            try:
                await self._put(path, data)
                return
            except Exception:
                logger.warning("cached: filling the front with %s failed; dropping it", path)
        # The front must not keep an older version: if this fails too, the caller hears.
        await self._drop(path)

    # -- Storager -----------------------------------------------------------------------

    async def read(self, path: str, **pairs: Any) -> bytes:
        with self._traced("read", path):
            try:
                data = await call_child(self.front, "read", path, lambda s: s.read(path, **pairs))
            except NotFoundError:
                pass
            else:
                self._coherence.hit(path)
                served_by.set("front")
                return data
            generation = self._coherence.miss(path)
            served_by.set("back")
            if pairs:  # a range or a callback: serve from the back, cache nothing
                return await call_child(self.back, "read", path, lambda s: s.read(path, **pairs))
            data = await call_child(self.back, "read", path, lambda s: s.read(path))
            await self._fill(path, data, generation)
            return data

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        with self._traced("open_reader", path):
            try:
                reader = await self.front.open_reader(path, **pairs)
            except NotFoundError:
                pass
            else:
                self._coherence.hit(path)
                served_by.set("front")
                return reader
            generation = self._coherence.miss(path)
            served_by.set("back")
            reader = await call_child(
                self.back, "open_reader", path, lambda s: s.open_reader(path, **pairs)
            )
            if pairs:  # a range: serve it, cache nothing
                return reader

            async def complete(data: bytes) -> None:
                try:
                    await self._fill(path, data, generation)
                except Exception:
                    logger.warning("cached: filling the front with %s failed", path)

            return async_filling_reader(reader, Capture(self._coherence.max_object), complete)

    async def stat(self, path: str, **pairs: Any) -> Object:
        with self._traced("stat", path):
            return await call_child(self.back, "stat", path, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        with self._traced("list", path):
            return call_listing(self.back, "list", path, lambda s: s.list(path, **pairs))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        with self._traced("write", path):
            async with async_held([self._coherence.lock_for(path)]):
                self._coherence.bump([path])
                if isinstance(data, bytes | bytearray | memoryview):
                    obj = await self.back.write(path, data, **pairs)
                    await self._after_write(path, bytes(data))
                    return obj
                tee, payload = async_teed(path, data, self._coherence.max_object)
                obj = await self.back.write(path, payload, **pairs)
                await self._after_write(path, tee.captured())
                return obj

    async def delete(self, path: str, **pairs: Any) -> None:
        with self._traced("delete", path):
            await self._mutate([path], lambda: self.back.delete(path, **pairs))


class _AsyncCachedCopier(AsyncCached, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("copy", src):
            back = cast(AsyncCopier, self.back)
            await self._mutate([dst], lambda: back.copy(src, dst, **pairs))


class _AsyncCachedMover(AsyncCached, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("move", src):
            back = cast(AsyncMover, self.back)
            await self._mutate([src, dst], lambda: back.move(src, dst, **pairs))


class _AsyncCachedAppender(AsyncCached, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        with self._traced("append", path):
            back = cast(AsyncAppender, self.back)
            return await self._mutate([path], lambda: back.append(path, data, **pairs))


class _AsyncCachedDirer(AsyncCached, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        with self._traced("create_dir", path):
            return await cast(AsyncDirer, self.back).create_dir(path, **pairs)


class _AsyncCachedSegmenter(AsyncCached, AsyncSegmenter):
    """Uploads run on the back; completing one drops its path from the front."""

    def _uploader(self) -> AsyncSegmenter:
        return cast(AsyncSegmenter, self.back)

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        with self._traced("create_multipart", path):
            return await self._uploader().create_multipart(path, **pairs)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        with self._traced("write_multipart", multipart.path):
            return await self._uploader().write_multipart(multipart, number, data, **pairs)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        paths = upload_paths(multipart, self.back.metadata().work_dir)
        with self._traced("complete_multipart", multipart.path):
            return await self._mutate(
                paths, lambda: self._uploader().complete_multipart(multipart, parts, **pairs)
            )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        with self._traced("abort_multipart", multipart.path):
            await self._uploader().abort_multipart(multipart, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        with self._traced("list_multipart", multipart.path):
            return call_listing(
                self.back,
                "list_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).list_multipart(multipart, **pairs),
            )


class _AsyncCachedLinker(AsyncCached, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        with self._traced("create_link", path):
            back = cast(AsyncLinker, self.back)
            return await self._mutate([path], lambda: back.create_link(path, target, **pairs))


AsyncCached._capability_mixins = {
    Copier: _AsyncCachedCopier,
    Mover: _AsyncCachedMover,
    Segmenter: _AsyncCachedSegmenter,
    Appender: _AsyncCachedAppender,
    Direr: _AsyncCachedDirer,
    Linker: _AsyncCachedLinker,
}
