"""AsyncMirror: the async conformance suite, and the sync Mirror's fault tests in async form."""

from __future__ import annotations

import asyncio
import io
import random
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storager import (
    AsyncStorager,
    InvalidArgumentError,
    NotFoundError,
    ServiceInternalError,
    Storager,
)
from storager._async_protocols import AsyncSegmenter
from storager.aio import async_view
from storager.aio.combinators import (
    AsyncCached,
    AsyncDelegate,
    AsyncLogged,
    AsyncMirror,
    AsyncRetry,
    AsyncTimeout,
)
from storager.combinators import Mirror, MirrorError, RetryPolicy
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite
from storager.testing.faulty import Fault, FaultyStorager

MiB = 1 << 20


def _aio(store: Storager) -> AsyncStorager:
    return async_view(store)


async def _chunks(n: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(n):
        await asyncio.sleep(0)
        yield bytes([i % 251]) * size


_opened: list[AsyncStorager] = []


def _mirror(targets: Any, **options: Any) -> Any:
    """An AsyncMirror closed when the test ends (closing it closes its targets)."""
    mirror = AsyncMirror(targets, **options)
    _opened.append(mirror)
    return mirror


@pytest.fixture(autouse=True)
def _close_mirrors() -> Iterator[None]:
    yield
    while _opened:
        asyncio.run(_opened.pop().close())


# -- conformance --------------------------------------------------------------------------


class TestAsyncMirrorOverFs(AsyncStoragerSuite):
    """AsyncMirror({primary: fs.aio, backup: fs.aio}, write="parallel")."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path / "a"), work_dir=work_dir, **pairs)

        return factory

    @pytest.fixture(autouse=True)
    def _backup_dir(self, tmp_path: Path) -> None:
        self._backup_root = tmp_path / "b"
        self._backup_root.mkdir(exist_ok=True)

    def to_async(self, store: Storager) -> AsyncStorager:
        backup = FsStorage(root=str(self._backup_root), work_dir=store.metadata().work_dir)
        return AsyncMirror({"primary": _aio(store), "backup": _aio(backup)}, write="parallel")

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("a mirror is never a Presigner: its capability is not fs's alone")


class TestAsyncMirrorOverMemoryRacing(AsyncStoragerSuite):
    """AsyncMirror over three memory stores, sequential writes and race reads."""

    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return MemoryStorage(work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        wd = store.metadata().work_dir
        others = {f"m{i}": _aio(MemoryStorage(work_dir=wd)) for i in (1, 2)}
        return AsyncMirror({"m0": _aio(store), **others}, read="race", rollback="delete")

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("a mirror is never a Presigner: its capability is not memory's alone")


class TestAsyncNestedTreeWithMirror(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncMirror({primary: AsyncCached(memory, fs), backup:
    AsyncTimeout(fs)}))): the async form of the sync nested tree."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path / "a"), work_dir=work_dir, **pairs)

        return factory

    @pytest.fixture(autouse=True)
    def _backup_dir(self, tmp_path: Path) -> None:
        self._backup_root = tmp_path / "b"
        self._backup_root.mkdir(exist_ok=True)

    def to_async(self, store: Storager) -> AsyncStorager:
        wd = store.metadata().work_dir
        primary = AsyncCached(_aio(MemoryStorage(work_dir=wd)), _aio(store))
        backup = AsyncTimeout(_aio(FsStorage(root=str(self._backup_root), work_dir=wd)), 30.0)
        mirror = AsyncMirror({"primary": primary, "backup": backup}, write="parallel")
        return AsyncLogged(AsyncRetry(mirror, RetryPolicy(initial_backoff=0.001)))

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("the tree's capability is what its stores share, not fs's alone")


# -- rollback (tests/combinators/test_faults.py, awaited) ---------------------------------


@pytest.mark.parametrize("write", ["sequential", "parallel"])
@pytest.mark.parametrize("kind", ["bytes", "stream"])
def test_rollback_leaves_no_partial_copies(write: str, kind: str, tmp_path: Path) -> None:
    mem, fs, third = MemoryStorage(), FsStorage(root=str(tmp_path)), MemoryStorage()
    broken = FaultyStorager(third, fail={"write": 1})
    mirror = _mirror({"a": _aio(mem), "b": _aio(fs), "c": _aio(broken)}, write=write)

    async def main() -> MirrorError:
        data: Any = b"new" * 100_000 if kind == "bytes" else _chunks(8)
        with pytest.raises(MirrorError) as info:
            await mirror.write("obj.bin", data)
        return info.value

    err = asyncio.run(main())
    assert isinstance(err, ServiceInternalError)  # also the failing target's class
    assert "c: ServiceInternalError" in str(err)
    assert set(err.outcomes) == {"a", "b", "c"}
    for store in (mem, fs, third):
        with pytest.raises(NotFoundError):
            store.stat("obj.bin")


@pytest.mark.parametrize("write", ["sequential", "parallel"])
def test_rollback_restores_previous_version(write: str, tmp_path: Path) -> None:
    mem, fs = MemoryStorage(), FsStorage(root=str(tmp_path))
    faulty = FaultyStorager(MemoryStorage())
    mirror = _mirror({"a": _aio(mem), "b": _aio(fs), "c": _aio(faulty)}, write=write)

    async def main() -> MirrorError:
        await mirror.write("doc.txt", b"version 1")
        faulty.fail = {"write": 1}
        with pytest.raises(MirrorError) as info:
            await mirror.write("doc.txt", io.BytesIO(b"version 2, longer"))
        return info.value

    err = asyncio.run(main())
    assert mem.read("doc.txt") == b"version 1"
    assert fs.read("doc.txt") == b"version 1"
    assert "a: ok (rolled back)" in str(err) or "a: cancelled" in str(err)


def test_restore_puts_back_content_type_and_user_metadata(tmp_path: Path) -> None:
    a, b = MemoryStorage(), FsStorage(root=str(tmp_path / "b"))
    faulty = FaultyStorager(b)
    b.write("k", b"old")
    a.write("k", b"old", content_type="text/plain", user_metadata={"x": "1"})
    mirror = _mirror({"a": _aio(a), "b": _aio(faulty)}, write="sequential")
    faulty.fail = {"write": 1}

    async def main() -> None:
        with pytest.raises(MirrorError):
            await mirror.write("k", b"new", content_type="application/json")

    asyncio.run(main())
    obj = a.stat("k")
    assert a.read("k") == b"old"
    assert obj.content_type == "text/plain"
    assert dict(obj.user_metadata) == {"x": "1"}


def test_sequential_stops_at_first_failure() -> None:
    broken = FaultyStorager(MemoryStorage(), fail={"write": ServiceInternalError})
    mem = MemoryStorage()
    mirror = _mirror({"broken": _aio(broken), "a": _aio(mem), "b": _aio(MemoryStorage())})

    async def main() -> MirrorError:
        with pytest.raises(MirrorError) as info:
            await mirror.write("x", b"1")
        return info.value

    err = asyncio.run(main())
    assert err.outcomes["a"] == err.outcomes["b"] == "not attempted"
    assert broken.calls["write"] == 1
    with pytest.raises(NotFoundError):
        mem.stat("x")


def test_stream_is_read_once_in_bounded_memory(tmp_path: Path) -> None:
    targets = {f"t{i}": FsStorage(root=str(tmp_path / f"t{i}")) for i in range(3)}
    mirror = _mirror({n: _aio(t) for n, t in targets.items()}, write="parallel", rollback="delete")
    reads = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal reads
        async for chunk in _chunks(32, MiB):
            reads += 1
            yield chunk

    async def main() -> None:
        await mirror.write("big.bin", source())

    tracemalloc.start()
    try:
        asyncio.run(main())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reads == 32
    for t in targets.values():
        assert t.stat("big.bin").content_length == 32 * MiB
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB for 32 MiB to 3 targets"


def test_a_failing_source_leaves_nothing_and_raises_its_own_error() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    mirror = _mirror({"a": _aio(a), "b": _aio(b)}, write="parallel")

    async def source() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise ValueError("source broke")

    async def main() -> None:
        with pytest.raises(Exception, match="source broke"):
            await mirror.write("k", source())

    asyncio.run(main())
    assert not list(a.list("")) and not list(b.list(""))


# -- reads ----------------------------------------------------------------------------------


def test_race_returns_fastest_healthy_target_and_cancels_the_rest() -> None:
    slow, broken, fast = MemoryStorage(), MemoryStorage(), MemoryStorage()
    for store, content in ((slow, b"slow"), (broken, b"broken"), (fast, b"fast")):
        store.write("k", content)
    mirror = _mirror(
        {
            "slow": _aio(FaultyStorager(slow, latency=0.5)),
            "broken": _aio(FaultyStorager(broken, fail={"read": ServiceInternalError})),
            "fast": _aio(FaultyStorager(fast, latency=0.02)),
        },
        read="race",
    )

    async def main() -> tuple[bytes, float]:
        start = time.perf_counter()
        data = await mirror.read("k")
        took = time.perf_counter() - start
        return data, took

    data, took = asyncio.run(main())
    assert data == b"fast"
    assert took < 0.4


def test_race_closes_the_readers_that_lost() -> None:
    opened: list[str] = []
    closed: list[str] = []

    class Recording(AsyncDelegate):
        combinator = "recording"

        async def _around(self, op: str, path: str, fn: Any) -> Any:
            result = await fn(self._inner)
            if op == "open_reader":
                opened.append(path)
                close = result.close

                async def recorded() -> None:
                    closed.append(path)
                    await close()

                result.close = recorded
            return result

    stores = {n: MemoryStorage() for n in ("a", "b", "c")}
    for store in stores.values():
        store.write("k", b"data")
    mirror = _mirror({n: Recording(_aio(s)) for n, s in stores.items()}, read="race")

    async def main() -> bytes:
        reader = await mirror.open_reader("k")
        data = await reader.read()
        await reader.close()
        return data

    assert asyncio.run(main()) == b"data"
    assert opened  # the winner at least; every loser that opened one had it closed
    assert len(closed) == len(opened)


def test_first_falls_through_missing_and_failing() -> None:
    mem = MemoryStorage()
    mem.write("k", b"third")
    failing = FaultyStorager(MemoryStorage(), fail={"*": ServiceInternalError})
    mirror = _mirror(
        {"missing": _aio(MemoryStorage()), "failing": _aio(failing), "good": _aio(mem)}
    )

    async def main() -> None:
        assert await mirror.read("k") == b"third"
        assert (await mirror.stat("k")).content_length == 5
        assert [o.path async for o in mirror.list("", targets=["good"])] == ["k"]
        with pytest.raises(NotFoundError):
            await mirror.read("absent", targets=["missing"])

    asyncio.run(main())


def test_targets_and_order_are_checked() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    mirror = _mirror({"a": _aio(a), "b": _aio(b)})

    async def main() -> None:
        await mirror.write("only-b", b"1", targets=["b"])
        with pytest.raises(InvalidArgumentError, match="unknown target 'z'"):
            await mirror.read("x", targets=["z"])

    asyncio.run(main())
    assert b.read("only-b") == b"1"
    with pytest.raises(NotFoundError):
        a.stat("only-b")
    with pytest.raises(InvalidArgumentError):
        mirror.set_standard_order(["b", "nope"])
    mirror.set_standard_order(["b"])
    assert mirror.standard_order == ["b", "a"]
    with pytest.raises(InvalidArgumentError):
        _mirror({"a": _aio(a)}, write="sometimes")
    with pytest.raises(InvalidArgumentError):
        _mirror({"a": a})  # type: ignore[dict-item]


# -- per-path serialisation (tests/combinators/test_mirror_rollback.py, awaited) -----------


@pytest.mark.parametrize("data", ["bytes", "stream"])
def test_failed_write_does_not_roll_back_a_concurrent_acknowledged_write(data: str) -> None:
    a, b = MemoryStorage(), MemoryStorage()
    a.write("k", b"v0")
    b.write("k", b"v0")
    slow = FaultyStorager(b, fail={"write": 1}, latency={"write": 0.2})
    mirror = _mirror({"a": _aio(a), "b": _aio(slow)}, write="parallel")

    def payload(value: bytes) -> Any:
        return value if data == "bytes" else iter([value])

    async def main() -> list[Any]:
        first = asyncio.ensure_future(mirror.write("k", payload(b"v1")))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(mirror.write("k", payload(b"v2")))
        results = await asyncio.gather(first, second, return_exceptions=True)
        return results

    first, second = asyncio.run(main())
    assert isinstance(first, MirrorError)
    assert not isinstance(second, BaseException)
    assert a.read("k") == b.read("k") == b"v2"


def test_many_writers_with_failures_leave_the_targets_equal() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    rng = random.Random(8)
    flaky = FaultyStorager(
        b, fail={"write": Fault(when=lambda _: rng.random() < 0.3)}, latency=0.002
    )
    mirror = _mirror({"a": _aio(a), "b": _aio(flaky)}, write="parallel")
    acknowledged: set[bytes] = set()

    async def writer(n: int) -> None:
        for i in range(10):
            value = f"w{n}-{i}".encode()
            try:
                await mirror.write("k", value)
            except MirrorError:
                continue
            acknowledged.add(value)

    async def main() -> None:
        await asyncio.gather(*(writer(n) for n in range(5)))

    asyncio.run(main())
    assert acknowledged
    assert a.read("k") == b.read("k")
    assert a.read("k") in acknowledged
    assert len(mirror._locks) == 0  # released entries are removed


# -- cancellation -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bytes", "stream"])
def test_a_timed_out_write_is_rolled_back_where_it_landed(kind: str) -> None:
    fast, slow = MemoryStorage(), MemoryStorage()
    fast.write("k", b"old")
    slow.write("k", b"old")
    mirror = _mirror(
        {"fast": _aio(fast), "slow": _aio(FaultyStorager(slow, latency={"write": 0.5}))},
        write="parallel",
    )
    store = AsyncTimeout(mirror, 0.2)

    async def main() -> None:
        data: Any = b"new" if kind == "bytes" else _chunks(2, 10)
        with pytest.raises(Exception, match=r"timed out|no answer|deadline|timeout"):
            await store.write("k", data)
        await asyncio.sleep(0.6)  # the slow target's thread finishes its write

    asyncio.run(main())
    assert fast.read("k") == b"old"  # rolled back after the cancellation
    assert slow.read("k") == b"old"  # its thread found the rest of the data refused


# -- capabilities, multipart shared with the sync Mirror ------------------------------------


def test_capabilities_are_what_every_target_has_and_never_presign() -> None:
    mem = MemoryStorage()
    both = _mirror({"a": _aio(mem), "b": _aio(MemoryStorage())})
    sync = Mirror({"a": mem, "b": MemoryStorage()})
    for name in ("copy", "move", "create_multipart", "append", "create_dir", "create_link"):
        assert hasattr(both, name) == hasattr(sync, name), name
    assert not hasattr(both, "presign_read")
    sync.close()


def test_an_upload_started_by_the_sync_mirror_completes_through_the_async_one() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    sync = Mirror({"a": a, "b": b})
    upload = sync.create_multipart("big")
    part1 = sync.write_multipart(upload, 1, b"x" * (5 * MiB))
    mirror = _mirror({"a": _aio(a), "b": _aio(b)}, write="parallel")
    assert isinstance(mirror, AsyncSegmenter)

    async def main() -> None:
        async def rest() -> AsyncIterator[bytes]:
            yield b"yz"

        part2 = await mirror.write_multipart(upload, 2, rest())
        listed = [p.number async for p in mirror.list_multipart(upload)]
        assert listed == [1, 2]
        await mirror.complete_multipart(upload, [part1, part2])

    asyncio.run(main())
    sync.close()
    assert a.read("big") == b.read("big") == b"x" * (5 * MiB) + b"yz"


def test_a_failed_completion_rolls_back_and_aborts() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    b_faulty = FaultyStorager(b)
    mirror = _mirror({"a": _aio(a), "b": _aio(b_faulty)}, write="sequential")
    assert isinstance(mirror, AsyncSegmenter)

    async def main() -> MirrorError:
        upload = await mirror.create_multipart("obj")
        part = await mirror.write_multipart(upload, 1, b"data")
        b_faulty.fail = {"complete_multipart": 1}
        with pytest.raises(MirrorError) as info:
            await mirror.complete_multipart(upload, [part])
        return info.value

    err = asyncio.run(main())
    assert err.outcomes["a"] == "ok (rolled back)"
    for store in (a, b):
        with pytest.raises(NotFoundError):
            store.stat("obj")


def test_changes_of_one_path_are_serialised_across_loops_in_threads() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    rng = random.Random(12)
    flaky = FaultyStorager(
        b, fail={"write": Fault(when=lambda _: rng.random() < 0.3)}, latency=0.002
    )
    mirror = _mirror({"a": _aio(a), "b": _aio(flaky)}, write="parallel")
    acknowledged: set[bytes] = set()
    errors: list[BaseException] = []

    def thread_body(n: int) -> None:
        async def writes() -> None:
            for i in range(8):
                value = f"t{n}-{i}".encode()
                try:
                    await mirror.write("k", value)
                except MirrorError:
                    continue
                acknowledged.add(value)

        try:
            asyncio.run(writes())  # each thread its own loop, one mirror for all
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_body, args=(n,), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert acknowledged
    assert a.read("k") == b.read("k")
    assert a.read("k") in acknowledged
    assert len(mirror._locks) == 0
