"""AsyncCached: Cached's coherence (``storager.combinators._cached.Coherence``), awaited.

The per-path locks are the sync Cached's thread locks, so the rules hold across event
loops in several threads too. A coroutine never blocks its loop on one: it takes the
lock without waiting, or tries again after a short sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
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
from storager._protocols import Appender, Copier, Direr, Linker, Mover, Segmenter, WriteData
from storager._streams import iter_chunks
from storager.aio._native import _is_async, async_chunks
from storager.aio.combinators._base import AsyncWrapper, async_capabilities_of
from storager.combinators._base import meet_capability, ops_of, served_by
from storager.combinators._cached import Capture, Coherence, Tee, upload_paths

__all__ = ["AsyncCached"]

T = TypeVar("T")
logger = logging.getLogger("storager.combinators.cached")

#: What the async twin offers of the back's capabilities: the sync Cached's.
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})
_POLL_MIN = 0.0005
_POLL_MAX = 0.01


@contextlib.asynccontextmanager
async def _held(locks: Sequence[threading.Lock]) -> AsyncIterator[None]:
    """Hold ``locks`` (in the order given) without blocking the event loop."""
    taken: list[threading.Lock] = []
    try:
        for lock in locks:
            delay = _POLL_MIN
            while not lock.acquire(blocking=False):
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()


class AsyncCached(AsyncWrapper):
    """Serve reads from ``front``, filled from ``back``: the twin of ``Cached``.

    The same arguments, coherence rules (writes and deletes serialised per path, a read
    that missed fills the front only if no change started meanwhile), LRU limits, and
    ``hits``/``misses``. Capabilities: the back's Copier, Mover, Segmenter (uploads run
    on the back; completing one drops its path from the front), Appender, Direr and
    Linker (a link is never cached: a write to its target would leave it stale).
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

    # -- coherence ----------------------------------------------------------------------

    async def _drop(self, path: str) -> None:
        await self.front.delete(path)
        self._coherence.dropped(path)

    async def _put(self, path: str, data: bytes) -> None:
        await self.front.write(path, data)
        for victim in self._coherence.put(path, len(data)):
            await self.front.delete(victim)

    async def _mutate(self, paths: list[str], fn: Callable[[], Awaitable[T]]) -> T:
        """Run a change on the back, then drop ``paths`` from the front."""
        async with _held(self._coherence.locks_for(paths)):
            self._coherence.bump(paths)
            result = await fn()  # a failed back change leaves the front untouched
            for p in paths:
                await self._drop(p)
            return result

    async def _fill(self, path: str, data: bytes, generation: int) -> None:
        if not self._coherence.cacheable(len(data)):
            return
        if (
            isinstance(self.back, AsyncLinker)
            and ObjectMode.LINK in (await self.back.stat(path)).mode
        ):
            return
        async with _held([self._coherence.lock_for(path)]):
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
        try:
            data = await self.front.read(path, **pairs)
        except NotFoundError:
            pass
        else:
            self._coherence.hit(path)
            served_by.set("front")
            return data
        generation = self._coherence.miss(path)
        served_by.set("back")
        if pairs:  # a range or a callback: serve from the back, cache nothing
            return await self.back.read(path, **pairs)
        data = await self.back.read(path)
        await self._fill(path, data, generation)
        return data

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
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
        reader = await self.back.open_reader(path, **pairs)
        if pairs:  # a range: serve it, cache nothing
            return reader

        async def complete(data: bytes) -> None:
            try:
                await self._fill(path, data, generation)
            except Exception:
                logger.warning("cached: filling the front with %s failed", path)

        return _FillingReader(reader, Capture(self._coherence.max_object), complete)

    async def stat(self, path: str, **pairs: Any) -> Object:
        return await self.back.stat(path, **pairs)

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        return self.back.list(path, **pairs)

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        async with _held([self._coherence.lock_for(path)]):
            self._coherence.bump([path])
            if isinstance(data, bytes | bytearray | memoryview):
                obj = await self.back.write(path, data, **pairs)
                await self._after_write(path, bytes(data))
                return obj
            tee = Tee((), self._coherence.max_object)
            if _is_async(data):
                payload: AsyncWriteData = _teeing(tee, path, data)
            else:
                chunks = iter_chunks("write", "cached", path, cast(WriteData, data))
                payload = _teeing_sync(tee, chunks)
            obj = await self.back.write(path, payload, **pairs)
            await self._after_write(path, tee.captured())
            return obj

    async def delete(self, path: str, **pairs: Any) -> None:
        await self._mutate([path], lambda: self.back.delete(path, **pairs))


class _FillingReader:
    """Read through ``inner``; ``complete`` gets the object after a whole sequential read."""

    def __init__(
        self,
        inner: AsyncReader,
        capture: Capture,
        complete: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._inner = inner
        self._capture = capture
        self._complete = complete

    async def _took(self, data: bytes, asked: int) -> None:
        whole = self._capture.took(data, asked)
        if whole is not None:
            await self._complete(whole)

    async def read(self, size: int = -1) -> bytes:
        data = await self._inner.read(size)
        await self._took(data, size if size >= 0 else max(len(data), 1))
        if size < 0:
            await self._took(b"", 1)  # read to the end
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        data = await self.read(len(view))
        view[: len(data)] = data
        return len(data)

    async def seek(self, offset: int, whence: int = 0) -> int:
        position = await self._inner.seek(offset, whence)
        self._capture.seeked(position)
        return position

    async def tell(self) -> int:
        return await self._inner.tell()

    async def close(self) -> None:
        self._capture.drop()
        await self._inner.close()

    async def __aenter__(self) -> _FillingReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _teeing(tee: Tee, path: str, data: AsyncWriteData) -> AsyncIterator[bytes]:
    async for chunk in async_chunks("write", "cached", path, data):
        piece = bytes(chunk)
        tee.keep(piece)
        yield piece


def _teeing_sync(tee: Tee, chunks: Iterator[Any]) -> Iterator[bytes]:
    for chunk in chunks:
        piece = bytes(chunk)
        tee.keep(piece)
        yield piece


class _AsyncCachedCopier(AsyncCached, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        back = cast(AsyncCopier, self.back)
        await self._mutate([dst], lambda: back.copy(src, dst, **pairs))


class _AsyncCachedMover(AsyncCached, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        back = cast(AsyncMover, self.back)
        await self._mutate([src, dst], lambda: back.move(src, dst, **pairs))


class _AsyncCachedAppender(AsyncCached, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        back = cast(AsyncAppender, self.back)
        return await self._mutate([path], lambda: back.append(path, data, **pairs))


class _AsyncCachedDirer(AsyncCached, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        return await cast(AsyncDirer, self.back).create_dir(path, **pairs)


class _AsyncCachedSegmenter(AsyncCached, AsyncSegmenter):
    """Uploads run on the back; completing one drops its path from the front."""

    def _uploader(self) -> AsyncSegmenter:
        return cast(AsyncSegmenter, self.back)

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        return await self._uploader().create_multipart(path, **pairs)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        return await self._uploader().write_multipart(multipart, number, data, **pairs)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        paths = upload_paths(multipart, self.back.metadata().work_dir)
        return await self._mutate(
            paths, lambda: self._uploader().complete_multipart(multipart, parts, **pairs)
        )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        await self._uploader().abort_multipart(multipart, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        return self._uploader().list_multipart(multipart, **pairs)


class _AsyncCachedLinker(AsyncCached, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        return await self._mutate(
            [path], lambda: cast(AsyncLinker, self.back).create_link(path, target, **pairs)
        )


AsyncCached._capability_mixins = {
    Copier: _AsyncCachedCopier,
    Mover: _AsyncCachedMover,
    Segmenter: _AsyncCachedSegmenter,
    Appender: _AsyncCachedAppender,
    Direr: _AsyncCachedDirer,
    Linker: _AsyncCachedLinker,
}
