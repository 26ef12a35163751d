"""Multipart uploads and links through AsyncRouter and AsyncCached, as the sync ones have."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import (
    AsyncLinker,
    AsyncPresigner,
    AsyncSegmenter,
    AsyncStorager,
    InvalidArgumentError,
    Presigner,
    Storager,
)
from storager.aio.combinators import AsyncCached, AsyncRouter
from storager.combinators import Cached, Router
from storager.services.fs import FsStorage
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


def test_router_presigned_urls_are_the_mounts_own_for_the_path_inside_it() -> None:
    root, logs = MemoryStorage(), MemoryStorage(work_dir="/wd/")
    root.write("a.txt", b"from root")
    logs.write("a.txt", b"from logs")
    store = AsyncRouter({"": root.aio, "logs/": logs.aio})
    assert isinstance(store, AsyncPresigner)

    async def urls() -> tuple[str, str, str]:
        return (
            await store.presign_read("logs/a.txt"),
            await store.presign_read("a.txt"),
            await store.presign_write("logs/sub/new.bin", expire=60),
        )

    logs_url, root_url, put_url = asyncio.run(urls())
    with urllib.request.urlopen(logs_url, timeout=10) as response:
        assert response.read() == b"from logs"
    with urllib.request.urlopen(root_url, timeout=10) as response:
        assert response.read() == b"from root"
    put = urllib.request.Request(put_url, data=b"put through the mount's url", method="PUT")
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status in (200, 201, 204)
    assert logs.read("sub/new.bin") == b"put through the mount's url"  # /wd/sub/new.bin
    assert not [o.path for o in root.list("", list_mode="prefix") if "new.bin" in o.path]
    asyncio.run(store.close())


def test_router_presigns_only_when_every_mount_does(tmp_path: Path) -> None:
    mem, other, fs = MemoryStorage(), MemoryStorage(), FsStorage(root=str(tmp_path))
    for mounts in ({"": mem, "b/": other}, {"": mem, "disk/": fs}):
        twin = AsyncRouter({prefix: store.aio for prefix, store in mounts.items()})
        sync = Router(mounts)
        assert isinstance(twin, AsyncPresigner) == isinstance(sync, Presigner)
        assert hasattr(twin, "presign_read") == hasattr(sync, "presign_read")
        ops = twin.metadata().capability.operations
        assert ("presign_write" in ops) == isinstance(sync, Presigner)
    assert not isinstance(AsyncRouter({"": mem.aio, "disk/": fs.aio}), AsyncPresigner)
