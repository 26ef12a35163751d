"""The async view: never blocks the loop, bounded threads, loops, cancellation, codegen."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import storager
from codegen.__main__ import main as codegen_main
from codegen.model import ROOT, load_model
from codegen.render_async import render_async_protocols, render_async_view
from storager import AsyncCopier, AsyncStorager, InvalidArgumentError, NotFoundError
from storager._async_protocols import ASYNC_TWIN
from storager._capability import OPERATIONS
from storager.aio import AsyncView, async_view
from storager.combinators import ReadOnly
from storager.services.memory import MemoryStorage
from storager.testing import FaultyStorager


def test_a_slow_backend_never_blocks_the_event_loop() -> None:
    view = async_view(FaultyStorager(MemoryStorage(), latency=0.2))
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(8):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(view.write("a", b"x"), ticker())

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.15


def test_a_view_runs_at_most_threads_calls_at_once() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    class Counting(FaultyStorager):
        def stat(self, path: str, **pairs: object) -> storager.Object:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.02)
            with lock:
                running -= 1
            return super().stat(path)

    inner = MemoryStorage()
    inner.write("a", b"x")
    view = async_view(Counting(inner), threads=3)

    async def main() -> None:
        await asyncio.gather(*(view.stat("a") for _ in range(12)))

    asyncio.run(main())
    assert most == 3


def test_cancelling_a_write_of_async_data_leaves_nothing() -> None:
    store = MemoryStorage()
    view = async_view(store, inline=False)

    async def slow_source() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1024
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(view.write("never", slow_source()))
        await asyncio.sleep(0.03)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Long enough for the source to end: without the abandonment the write would land.
        await asyncio.sleep(0.2)

    asyncio.run(main())
    with pytest.raises(NotFoundError):
        store.stat("never")


def test_memory_runs_inline_and_other_stores_on_the_pool() -> None:
    threads: list[int] = []

    async def write_from(view: AsyncStorager) -> None:
        await view.write("a", b"xy", io_callback=lambda n: threads.append(threading.get_ident()))

    async def main() -> int:
        await write_from(MemoryStorage().aio)
        await write_from(async_view(FaultyStorager(MemoryStorage())))
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads[0] == loop_thread
    assert threads[-1] != loop_thread


def test_sync_calls_work_inside_a_running_loop_next_to_async_ones() -> None:
    store = MemoryStorage()

    async def handler() -> bytes:
        store.write("sync", b"from sync code")  # as a FastAPI handler or Jupyter cell does
        return await store.aio.read("sync")

    assert asyncio.run(handler()) == b"from sync code"
    assert asyncio.run(handler()) == b"from sync code"


def test_aio_is_one_view_per_store_and_sync_goes_back() -> None:
    store = MemoryStorage()
    assert store.aio is store.aio
    assert isinstance(store.aio, AsyncView)
    assert store.aio.sync is store  # type: ignore[attr-defined]


def test_a_combinator_has_its_aio_view_too() -> None:
    inner = MemoryStorage()
    store = ReadOnly(inner)
    view = store.aio
    assert view is store.aio and view is not inner.aio
    assert isinstance(view, AsyncView) and view.sync is store
    assert not isinstance(view, AsyncCopier)  # the combinator's capabilities, not the leaf's
    inner.write("a.txt", b"hi")
    assert asyncio.run(view.read("a.txt")) == b"hi"
    with pytest.raises(storager.PermissionDeniedError):
        asyncio.run(view.write("b.txt", b"x"))
    asyncio.run(view.close())


def test_open_async_and_capability_twins() -> None:
    store = storager.open_async("memory://")
    assert isinstance(store, AsyncStorager) and isinstance(store, AsyncCopier)
    readonly = async_view(ReadOnly(MemoryStorage()))
    assert not isinstance(readonly, AsyncCopier)

    async def main() -> bytes:
        async with store:  # type: ignore[attr-defined]
            await store.write("a", b"hi")
            return await store.read("a", offset=1, size=1)

    assert asyncio.run(main()) == b"i"


def test_a_view_refuses_what_is_not_a_store() -> None:
    with pytest.raises(InvalidArgumentError, match="store must be a Storager"):
        async_view(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="threads must be an int >= 1"):
        async_view(MemoryStorage(), threads=0)


# -- codegen ---------------------------------------------------------------------------


def test_every_operation_has_its_async_twin_in_protocol_and_view() -> None:
    for op, protocol_name in OPERATIONS.items():
        sync_protocol = storager.__dict__[protocol_name]
        assert op in ASYNC_TWIN[sync_protocol].__dict__, op
    assert len(ASYNC_TWIN) == 8


def test_a_new_operation_in_the_toml_gets_async_twins(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "definitions", root / "definitions")
    shutil.copytree(ROOT / "services", root / "services", ignore=shutil.ignore_patterns("__py*"))
    with (root / "definitions" / "operations.toml").open("a") as fh:
        fh.write(
            '\n[truncate]\nprotocol = "Appender"\ndescription = "Cut an object short."\n'
            'params = [{ name = "path", kind = "path" }, { name = "size", kind = "int" }]\n'
            'returns = "Object"\npairs = []\n'
        )
    model = load_model(root)
    protocols = render_async_protocols(model)
    view = render_async_view(model)
    assert "async def truncate(self, path: str, size: int, **pairs: Any) -> Object:" in protocols
    assert "cast(Appender, self._sync).truncate, path, size, **pairs" in view


def test_the_generated_async_files_are_current() -> None:
    assert codegen_main(["--check"]) == 0


@pytest.mark.parametrize("inline", [True, False])
def test_an_async_source_that_raises_fails_the_write_with_its_own_error(inline: bool) -> None:
    store = MemoryStorage()
    view = async_view(store, inline=inline)

    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke"):
        asyncio.run(view.write("broken", broken()))
    with pytest.raises(NotFoundError):
        store.stat("broken")


def test_closing_a_store_lets_go_of_its_view_and_the_view_of_its_threads(
    tmp_path: Path,
) -> None:
    import gc
    import weakref

    from storager.combinators import Retry
    from storager.services.fs import FsStorage

    def used_and_closed() -> weakref.ref[Retry]:
        store = Retry(FsStorage(root=str(tmp_path)))
        store.write("a.txt", b"x")
        view = store.aio
        assert asyncio.run(view.read("a.txt")) == b"x"  # its pool is started
        store.close()
        assert isinstance(view, AsyncView) and view._pool is None  # threads told to stop
        return weakref.ref(store)

    # No cycle left between the store and its view: freed without the cyclic collector.
    gc.collect()
    gc.disable()
    try:
        assert used_and_closed()() is None
    finally:
        gc.enable()
    store = Retry(FsStorage(root=str(tmp_path)))
    view = store.aio
    store.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        asyncio.run(view.read("a.txt"))  # no new pool that nobody would stop


def test_two_threads_asking_for_aio_at_once_build_one_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import storager.aio as aio_module

    built: list[object] = []
    real = aio_module.async_view

    def slow_view(store: Any, **options: Any) -> Any:
        time.sleep(0.05)  # long enough for the other thread to ask meanwhile
        view = real(store, **options)
        built.append(view)
        return view

    monkeypatch.setattr(aio_module, "async_view", slow_view)
    store = ReadOnly(MemoryStorage())
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(store.aio)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and all(view is built[0] for view in seen)
