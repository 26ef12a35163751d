"""Multipart uploads and links through AsyncRouter and AsyncCached, as the sync ones have."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from storager import (
    AsyncLinker,
    AsyncSegmenter,
    AsyncStorager,
    InvalidArgumentError,
    Storager,
)
from storager.aio.combinators import AsyncCached, AsyncRouter
from storager.combinators import Cached, Router
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite

MiB = 1 << 20


class TestAsyncCachedOverMemory(AsyncStoragerSuite):
    """AsyncCached(memory.aio, memory.aio): the back's uploads and links, through the cache."""

    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return MemoryStorage(work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        front = MemoryStorage(work_dir=store.metadata().work_dir)
        return AsyncCached(front.aio, store.aio)  # type: ignore[attr-defined]

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("AsyncCached is never a Presigner: memory is")


def test_capabilities_match_the_sync_twins() -> None:
    mem, other = MemoryStorage(), MemoryStorage()
    pairs = [
        (AsyncCached(MemoryStorage().aio, mem.aio), Cached(MemoryStorage(), mem)),
        (AsyncRouter({"": mem.aio, "b/": other.aio}), Router({"": mem, "b/": other})),
    ]
    for twin, sync in pairs:
        for name in ("create_multipart", "create_link"):
            assert hasattr(twin, name) == hasattr(sync, name) is True, (twin, name)
        asyncio.run(twin.close())
        sync.close()


def test_cached_completing_an_upload_drops_the_stale_front_copy() -> None:
    front, back = MemoryStorage(), MemoryStorage()
    store = AsyncCached(front.aio, back.aio)
    assert isinstance(store, AsyncSegmenter)

    async def main() -> bytes:
        await store.write("obj", b"old")
        assert await store.read("obj") == b"old"
        upload = await store.create_multipart("obj")
        part = await store.write_multipart(upload, 1, b"new")
        await store.complete_multipart(upload, [part])
        data = await store.read("obj")
        await store.close()
        return data

    assert asyncio.run(main()) == b"new"


def test_cached_never_keeps_a_link_in_front() -> None:
    front, back = MemoryStorage(), MemoryStorage()
    store = AsyncCached(front.aio, back.aio)
    assert isinstance(store, AsyncLinker)

    async def main() -> tuple[bytes, bytes]:
        await store.write("target", b"v1")
        await store.create_link("link", "target")
        first = await store.read("link")
        await store.write("target", b"v2")  # changes what the link shows
        second = await store.read("link")
        await store.close()
        return first, second

    assert asyncio.run(main()) == (b"v1", b"v2")


def test_router_upload_runs_on_its_mount_and_links_stay_in_theirs() -> None:
    root, other = MemoryStorage(), MemoryStorage()
    store = AsyncRouter({"": root.aio, "b/": other.aio})
    assert isinstance(store, AsyncSegmenter) and isinstance(store, AsyncLinker)

    async def main() -> None:
        upload = await store.create_multipart("b/big")
        assert upload.path == "/b/big"
        part1 = await store.write_multipart(upload, 1, b"x" * (5 * MiB))
        part2 = await store.write_multipart(upload, 2, b"y")
        assert [p.number async for p in store.list_multipart(upload)] == [1, 2]
        obj = await store.complete_multipart(upload, [part1, part2])
        assert obj.path == "b/big"
        await store.write("b/t", b"t")
        link = await store.create_link("b/l", "b/t")
        assert link.path == "b/l"
        assert await store.read("b/l") == b"t"
        with pytest.raises(InvalidArgumentError, match="another mount"):
            await store.create_link("b/l2", "t")
        aborted = await store.create_multipart("gone")
        await store.abort_multipart(aborted)

    asyncio.run(main())
    assert other.stat("big").content_length == 5 * MiB + 1
    assert not [o.path for o in root.list("")]
    asyncio.run(store.close())
