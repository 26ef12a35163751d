"""Native async services: the seam, one client per loop, real cancellation."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import storager
from storager import (
    AsyncStorager,
    InvalidArgumentError,
    NotFoundError,
    PairUnsupportedError,
    Storager,
)
from storager.aio import AsyncView, LoopLocal, NativeAsync, async_view
from storager.aio.combinators import AsyncLogged, AsyncRetry, AsyncTimeout
from storager.services.azblob import AzblobStorage
from storager.services.azblob._async import AzblobAsync
from storager.services.gcs._async import GcsAsync
from storager.testing import AsyncStoragerSuite, url_factory
from tests.servers.azurite import AzuriteServer
from tests.services import test_azblob, test_gcs

blob_service = test_azblob.blob_service
container = test_azblob.container
azblob_url = test_azblob.azblob_url
gcs_bucket = test_gcs.gcs_bucket
gcs_url = test_gcs.gcs_url

KiB = 1024


# -- LoopLocal, with a fake client --------------------------------------------------------


class _Clients:
    """Counts the clients made and closed, and on which loop each was closed."""

    def __init__(self) -> None:
        self.made: list[asyncio.AbstractEventLoop] = []
        self.closed: list[tuple[object, asyncio.AbstractEventLoop]] = []

    async def make(self) -> object:
        await asyncio.sleep(0)
        self.made.append(asyncio.get_running_loop())
        return object()

    async def close(self, client: object) -> None:
        self.closed.append((client, asyncio.get_running_loop()))


def test_loop_local_makes_one_client_per_loop_and_closes_it_with_its_loop() -> None:
    clients = _Clients()
    local: LoopLocal[object] = LoopLocal(clients.make, clients.close)

    async def use() -> tuple[object, object]:
        first, second = await asyncio.gather(local.get(), local.get())  # concurrent first use
        return first, second

    for _ in range(3):
        a, b = asyncio.run(use())
        assert a is b
    assert len(clients.made) == 3
    assert len(set(map(id, clients.made))) == 3
    # Each was closed on its own loop, before asyncio.run returned.
    assert [loop for _, loop in clients.closed] == clients.made


def test_loop_local_aclose_closes_another_running_loops_client_on_that_loop() -> None:
    clients = _Clients()
    local: LoopLocal[object] = LoopLocal(clients.make, clients.close)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(local.get(), other).result(timeout=5)

        async def close_here() -> None:
            await local.get()
            await local.aclose()

        asyncio.run(close_here())
        assert len(clients.made) == 2
        assert sorted(id(loop) for _, loop in clients.closed) == sorted(map(id, clients.made))
        assert len(local) == 0
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(timeout=5)
        other.close()


def test_loop_local_drops_the_client_of_a_loop_closed_without_shutdown() -> None:
    clients = _Clients()
    local: LoopLocal[object] = LoopLocal(clients.make, clients.close)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(local.get())
    loop.close()  # no shutdown_asyncgens: the close cannot run any more
    asyncio.run(local.get())
    assert len(clients.made) == 2
    assert len(local) == 0  # the closed loop's entry is gone, the run's was closed


# -- azblob: the seam ---------------------------------------------------------------------


@pytest.fixture
def azblob(azurite_server: AzuriteServer, container: str) -> Iterator[AzblobStorage]:
    store = AzblobStorage(
        name=container,
        work_dir=f"/native-{secrets.token_hex(4)}/",
        endpoint=azurite_server.endpoint,
        credential=test_azblob._credential(azurite_server),
        block_size=256 * KiB,
    )
    yield store
    store.close()


@pytest.mark.azblob
def test_azblob_async_is_native_and_the_threaded_view_is_still_there(
    azblob: AzblobStorage,
) -> None:
    assert isinstance(azblob.aio, AzblobAsync)
    assert isinstance(azblob.aio, NativeAsync)
    assert azblob.aio.sync is azblob  # type: ignore[attr-defined]
    assert isinstance(async_view(azblob, native=False), AsyncView)
    assert isinstance(azblob.aio, storager.AsyncCopier)
    assert isinstance(azblob.aio, storager.AsyncAppender)
    assert not isinstance(azblob.aio, storager.AsyncSegmenter)


@pytest.mark.azblob
def test_open_async_of_an_azblob_url_is_native(azblob_url: str) -> None:
    store = storager.open_async(azblob_url)
    try:
        assert isinstance(store, AzblobAsync)
    finally:
        asyncio.run(store.close())


@pytest.mark.azblob
def test_azblob_native_refuses_the_pairs_the_sync_store_refuses(azblob: AzblobStorage) -> None:
    store = azblob.aio

    async def check() -> None:
        with pytest.raises(PairUnsupportedError, match="bogus"):
            await store.read("a", bogus=1)
        with pytest.raises(InvalidArgumentError):
            await store.write("a", b"abc", size=2)
        with pytest.raises(NotFoundError):
            await store.stat("a")

    asyncio.run(check())


@pytest.mark.azblob
def test_one_azblob_store_works_from_three_runs_and_a_thread_loop(azblob: AzblobStorage) -> None:
    store = azblob.aio
    asyncio.run(store.write("a.txt", b"one"))
    assert asyncio.run(store.read("a.txt")) == b"one"
    found: list[bytes] = []
    thread = threading.Thread(target=lambda: found.append(asyncio.run(store.read("a.txt"))))
    thread.start()
    thread.join(timeout=30)
    assert found == [b"one"]
    assert asyncio.run(store.stat("a.txt")).content_length == 3
    assert azblob.read("a.txt") == b"one"  # sync code alongside


async def _slow_source(parts: int, size: int, started: asyncio.Event) -> AsyncIterator[bytes]:
    for i in range(parts):
        if i == 2:
            started.set()
        await asyncio.sleep(0.05)
        yield bytes([i % 256]) * size


@pytest.mark.azblob
def test_azblob_native_write_cancelled_midway_leaves_the_old_object(azblob: AzblobStorage) -> None:
    store = azblob.aio
    azblob.write("big.bin", b"old")

    async def cancel_midway() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(store.write("big.bin", _slow_source(40, 128 * KiB, started)))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert azblob.read("big.bin") == b"old"


# -- gcs ----------------------------------------------------------------------------------


@pytest.mark.gcs
def test_gcs_async_is_native_across_runs_and_a_cancelled_write_leaves_the_old_object(
    gcs_url: str,
) -> None:
    sync = storager.open(gcs_url, work_dir=f"/native-{secrets.token_hex(4)}/", chunk_size=256 * KiB)
    store = sync.aio  # type: ignore[attr-defined]
    try:
        assert isinstance(store, GcsAsync)
        assert isinstance(async_view(sync, native=False), AsyncView)
        asyncio.run(store.write("a.txt", b"old"))
        assert asyncio.run(store.read("a.txt", offset=1)) == b"ld"

        async def cancel_midway() -> None:
            started = asyncio.Event()
            task = asyncio.create_task(store.write("a.txt", _slow_source(40, 128 * KiB, started)))
            await asyncio.wait_for(started.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_midway())
        assert sync.read("a.txt") == b"old"
        assert [o.path for o in asyncio.run(_listed(store))] == ["a.txt"]
    finally:
        asyncio.run(store.close())


async def _listed(store: Any) -> list[Any]:
    return [o async for o in store.list("")]


# -- the async suite over async combinators on native stores ------------------------------


def _tree(store: Storager) -> AsyncStorager:
    native = store.aio  # type: ignore[attr-defined]
    assert isinstance(native, NativeAsync)
    return AsyncLogged(AsyncRetry(AsyncTimeout(native, 30.0)))


@pytest.mark.azblob
class TestAsyncTreeOverNativeAzblob(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncTimeout(azblob's native async store)))."""

    @pytest.fixture
    def storager_factory(self, azblob_url: str) -> Any:
        return url_factory(azblob_url)

    def to_async(self, store: Storager) -> AsyncStorager:
        return _tree(store)


@pytest.mark.gcs
class TestAsyncTreeOverNativeGcs(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncTimeout(gcs's native async store)))."""

    @pytest.fixture
    def storager_factory(self, gcs_url: str) -> Any:
        return url_factory(gcs_url)

    def to_async(self, store: Storager) -> AsyncStorager:
        return _tree(store)


@pytest.mark.azblob
def test_sync_azblob_calls_inside_a_running_loop_work_beside_the_native_store(
    azblob: AzblobStorage,
) -> None:
    async def handler() -> bytes:
        azblob.write("sync.txt", b"from sync code")  # as a FastAPI handler or Jupyter would
        await azblob.aio.write("async.txt", b"from async code")
        return azblob.read("async.txt") + await azblob.aio.read("sync.txt")

    assert asyncio.run(handler()) == b"from async codefrom sync code"


@pytest.mark.azblob
def test_an_abandoned_sync_listing_closes_without_blocking(azblob: AzblobStorage) -> None:
    for name in ("a", "b", "c"):
        azblob.write(name, b"x")
    listing = azblob.list("")
    assert next(listing).path == "a"
    listing.close()  # type: ignore[attr-defined]
    assert [o.path for o in azblob.list("")] == ["a", "b", "c"]
