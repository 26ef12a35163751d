"""Striped from async code: ``async_striped`` over async children, and ``striped.aio``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from storager import AsyncCopier, AsyncSegmenter, AsyncStorager, InvalidArgumentError, Storager
from storager.aio import AsyncView
from storager.aio.combinators import AsyncRetry, async_striped
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Striped
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite

#: Small chunks: the suite's objects span many stripes, and its runs stay short.
CHUNK = 64 * 1024
CHUNK_AREA = ".striped/chunks/"


def _twin(store: Storager, codec: Codec, *, async_manifests: bool) -> AsyncStorager:
    """async_striped over the async views of the backends and manifests ``store`` uses."""
    kids = dict(cast(Striped, store).children())
    manifests = kids.pop("manifests")
    return async_striped(
        {name: backend.aio for name, backend in kids.items()},  # type: ignore[attr-defined]
        manifests=manifests.aio if async_manifests else manifests,  # type: ignore[attr-defined]
        codec=codec,
        chunk_size=CHUNK,
        work_dir=store.metadata().work_dir,
    )


class TestAsyncStripedOverMemory(AsyncStoragerSuite):
    """async_striped(memory.aio x 3, manifests=memory.aio), ReedSolomon(2, 1)."""

    write_memory_limit = None  # memory keeps every chunk in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            backends: dict[str, Storager] = {n: MemoryStorage() for n in "abc"}
            return Striped(
                backends,
                codec=ReedSolomon(2, 1),
                chunk_size=CHUNK,
                manifests=MemoryStorage(),
                work_dir=work_dir,
                **pairs,
            )

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        return _twin(store, ReedSolomon(2, 1), async_manifests=True)


class TestAsyncStripedOverFs(AsyncStoragerSuite):
    """async_striped(fs.aio x 3, manifests=fs (sync)), Replicas(2)."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            backends: dict[str, Storager] = {n: FsStorage(root=str(tmp_path / n)) for n in "abc"}
            return Striped(
                backends,
                codec=Replicas(2),
                chunk_size=CHUNK,
                manifests=FsStorage(root=str(tmp_path / "manifests")),
                work_dir=work_dir,
                **pairs,
            )

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        return _twin(store, Replicas(2), async_manifests=False)


def _chunks(stores: dict[str, MemoryStorage]) -> set[tuple[str, str]]:
    return {
        (name, o.path)
        for name, store in stores.items()
        for o in store.list(CHUNK_AREA, list_mode="prefix")
        if not o.is_dir
    }


def test_async_striped_writes_what_a_sync_striped_over_the_same_stores_reads() -> None:
    backends = {n: MemoryStorage() for n in "abc"}
    manifests = MemoryStorage()
    store = async_striped(
        {n: b.aio for n, b in backends.items()},
        manifests=manifests.aio,
        codec=ReedSolomon(2, 1),
        chunk_size=1024,
    )
    assert isinstance(store, AsyncCopier) and isinstance(store, AsyncSegmenter)
    data = bytes(range(256)) * 40  # 10 KiB: five stripes of two data chunks

    async def main() -> bytes:
        await store.write("dir/obj.bin", data)
        await store.copy("dir/obj.bin", "copy.bin")
        return await store.read("copy.bin", offset=1000, size=3000)

    assert asyncio.run(main()) == data[1000:4000]
    assert manifests.stat("dir/obj.bin").content_length  # the manifest, in the store given
    assert len(_chunks(backends)) == 15  # 5 stripes x 3 fragments, shared by the copy
    reader = Striped(backends, codec=ReedSolomon(2, 1), manifests=manifests, chunk_size=1024)
    assert reader.read("dir/obj.bin") == data
    asyncio.run(store.close())


def test_async_striped_refuses_a_child_without_a_sync_twin() -> None:
    with pytest.raises(InvalidArgumentError, match="sync twin"):
        async_striped(
            {"a": AsyncRetry(MemoryStorage().aio), "b": MemoryStorage().aio},
            manifests=MemoryStorage(),
            codec=Replicas(2),
        )
    with pytest.raises(InvalidArgumentError, match="sync twin"):
        async_striped(
            {"a": MemoryStorage().aio, "b": MemoryStorage().aio},
            manifests=AsyncRetry(MemoryStorage().aio),
            codec=Replicas(2),
        )
    with pytest.raises(InvalidArgumentError, match="mapping"):
        async_striped([MemoryStorage().aio], manifests=MemoryStorage(), codec=Replicas(2))  # type: ignore[arg-type]


def test_health_gc_and_heal_run_from_async_code_through_sync() -> None:
    backends = {n: MemoryStorage() for n in "abc"}
    view = async_striped(
        {n: b.aio for n, b in backends.items()},
        manifests=MemoryStorage(),
        codec=ReedSolomon(2, 1),
        chunk_size=1024,
    )
    striped = view.sync
    assert isinstance(striped, Striped)

    async def main() -> None:
        await view.write("keep.bin", b"k" * 4096)
        await view.write("drop.bin", b"d" * 4096)
        await view.delete("drop.bin")
        # drop.bin's chunks are unreferenced now; grace 0 lets gc take them at once.
        report = await asyncio.to_thread(striped.gc, 0.0)
        assert report.deleted == 6 and report.referenced == 6
        lost = next(iter(sorted(_chunks(backends))))
        backends[lost[0]].delete(lost[1])
        healed = await asyncio.to_thread(striped.heal, "keep.bin")
        assert [(r.path, r.rebuilt) for r in healed] == [("keep.bin", 1)]
        assert await view.read("keep.bin") == b"k" * 4096
        assert await asyncio.to_thread(striped.scrub) == []  # nothing damaged now
        assert lost not in _chunks(backends) and len(_chunks(backends)) == 6
        striped.mark_down("a", "maintenance")
        health = await asyncio.to_thread(striped.health)
        assert not health["a"].up and health["b"].up
        await view.close()

    asyncio.run(main())


def test_striped_aio_is_its_async_view() -> None:
    striped = Striped(
        {n: MemoryStorage() for n in "ab"},
        codec=Replicas(2),
        manifests=MemoryStorage(),
        chunk_size=1024,
    )
    view = striped.aio
    assert view is striped.aio and isinstance(view, AsyncView) and view.sync is striped
    assert isinstance(view, AsyncSegmenter)

    async def main() -> bytes:
        upload = await view.create_multipart("mp.bin")
        part = await view.write_multipart(upload, 1, b"x" * 3000)
        await view.complete_multipart(upload, [part])
        return await view.read("mp.bin")

    assert asyncio.run(main()) == b"x" * 3000
    assert striped.read("mp.bin") == b"x" * 3000
    asyncio.run(view.close())


def test_async_striped_is_its_stores_own_view() -> None:
    view = async_striped(
        {n: MemoryStorage().aio for n in "ab"}, manifests=MemoryStorage(), codec=Replicas(2)
    )
    assert view.sync.aio is view
