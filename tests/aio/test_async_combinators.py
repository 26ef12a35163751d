"""The async combinators: the conformance suite over trees of them, and their own behaviour."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storager import (
    AsyncStorager,
    InvalidArgumentError,
    NotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServiceInternalError,
    Storager,
)
from storager._async_types import AsyncWriteData
from storager._object import Object
from storager.aio import async_chunks, async_view
from storager.aio.combinators import (
    AsyncAudited,
    AsyncCached,
    AsyncDelegate,
    AsyncFailover,
    AsyncLogged,
    AsyncPrefixed,
    AsyncReadOnly,
    AsyncRetry,
    AsyncRouter,
    AsyncTimeout,
    async_mirror,
)
from storager.combinators import (
    Audited,
    Event,
    Logged,
    Retry,
    RetryPolicy,
    describe,
    read_audit,
    trace,
)
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite
from storager.testing.faulty import FaultyStorager


def _memory_factory(work_dir: str, **pairs: Any) -> Storager:
    return MemoryStorage(work_dir=work_dir, **pairs)


class TestAsyncTreeOverMemory(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncTimeout(memory.aio)))."""

    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        return _memory_factory

    def to_async(self, store: Storager) -> AsyncStorager:
        return AsyncLogged(AsyncRetry(AsyncTimeout(store.aio, 10.0)))  # type: ignore[attr-defined]


class TestAsyncTreeOverFs(AsyncStoragerSuite):
    """AsyncLogged(AsyncRetry(AsyncTimeout(fs.aio))): data streams through in bounded memory."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path), work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        return AsyncLogged(AsyncRetry(AsyncTimeout(store.aio, 10.0)))  # type: ignore[attr-defined]


class TestAsyncRetryOverFailover(AsyncStoragerSuite):
    """AsyncRetry(AsyncFailover(fs.aio, memory.aio))."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path), work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        backup = MemoryStorage(work_dir=store.metadata().work_dir)
        return AsyncRetry(AsyncFailover(store.aio, backup.aio))  # type: ignore[attr-defined]

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("the tree's capability is what fs and memory share, not fs's alone")


class TestAsyncAuditedOverFs(AsyncStoragerSuite):
    """AsyncAudited(fs.aio, log in memory)."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path), work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        opening = AsyncAudited.open(store.aio, MemoryStorage().aio)  # type: ignore[attr-defined]
        return asyncio.run(opening)

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("the tree's capability is what fs and its memory log share, not fs's alone")


class TestAsyncTimeoutOverBridgedMirror(AsyncStoragerSuite):
    """AsyncTimeout(async_mirror({primary: fs, backup: fs}, write="parallel"))."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path / "a"), work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        work_dir = store.metadata().work_dir
        backup = FsStorage(root=str(self._backup_root), work_dir=work_dir)
        primary = store.aio  # type: ignore[attr-defined]
        mirror = async_mirror({"primary": primary, "backup": backup.aio}, write="parallel")
        return AsyncTimeout(mirror, 30.0)

    @pytest.fixture(autouse=True)
    def _backup_dir(self, tmp_path: Path) -> None:
        self._backup_root = tmp_path / "b"
        self._backup_root.mkdir(exist_ok=True)

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("the tree's capability is what its stores share, not fs's alone")


class TestAsyncRouterOverPrefixed(AsyncStoragerSuite):
    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        return _memory_factory

    def to_async(self, store: Storager) -> AsyncStorager:
        routes = {
            "": AsyncPrefixed(store.aio, "view/"),  # type: ignore[attr-defined]
            "elsewhere/": MemoryStorage().aio,
        }
        return AsyncRouter(routes, work_dir=store.metadata().work_dir)

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("the router's capability is what its mounts share")


def test_bridged_combinators_refuse_a_child_without_a_sync_twin() -> None:
    with pytest.raises(InvalidArgumentError, match="sync twin"):
        async_mirror({"a": AsyncRetry(MemoryStorage().aio), "b": MemoryStorage().aio})


class TestAsyncCachedOverFs(AsyncStoragerSuite):
    """AsyncCached(memory.aio, fs.aio)."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path), work_dir=work_dir, **pairs)

        return factory

    def to_async(self, store: Storager) -> AsyncStorager:
        front = MemoryStorage(work_dir=store.metadata().work_dir)
        return AsyncCached(front.aio, store.aio)  # type: ignore[attr-defined]

    def test_async_capabilities_match_the_sync_ones(self) -> None:
        pytest.skip("AsyncCached is never a Presigner, and fs's capability is its back's")


class TestAsyncFailoverOverMemory(AsyncStoragerSuite):
    """AsyncFailover(memory.aio, memory.aio): multipart uploads pinned to their store."""

    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        return _memory_factory

    def to_async(self, store: Storager) -> AsyncStorager:
        backup = MemoryStorage(work_dir=store.metadata().work_dir)
        return AsyncFailover(store.aio, backup.aio)  # type: ignore[attr-defined]


class TestAsyncPrefixedOverMemory(AsyncStoragerSuite):
    write_memory_limit = None  # memory keeps each object in process memory

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        return _memory_factory

    def to_async(self, store: Storager) -> AsyncStorager:
        work_dir = store.metadata().work_dir
        return AsyncPrefixed(store.aio, "view/", work_dir=work_dir)  # type: ignore[attr-defined]


# -- a slow async store, to see what Timeout stops --------------------------------------------


class SlowWrites(AsyncDelegate):
    """Writes that wait ``before`` seconds, read the data, wait ``commit`` seconds, then land."""

    combinator = "slow"

    def __init__(self, inner: AsyncStorager, *, before: float = 0.0, commit: float = 0.0) -> None:
        super().__init__(inner)
        self.before = before
        self.commit = commit
        self.landed = 0

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        await asyncio.sleep(self.before)
        chunks = [bytes(c) async for c in async_chunks("write", "slow", path, data)]
        await asyncio.sleep(self.commit)
        obj = await self._inner.write(path, b"".join(chunks), **pairs)
        self.landed += 1
        return obj


async def _trickle(parts: int, delay: float) -> AsyncIterator[bytes]:
    for _ in range(parts):
        await asyncio.sleep(delay)
        yield b"x" * 10


@pytest.fixture
def memory() -> MemoryStorage:
    return MemoryStorage()


def test_timeout_while_the_data_streams_is_a_clean_timeout_and_nothing_lands(
    memory: MemoryStorage,
) -> None:
    slow = SlowWrites(memory.aio)
    store = AsyncTimeout(slow, 0.2)

    async def run() -> None:
        with pytest.raises(OperationTimeoutError, match="nothing was changed"):
            await store.write("a.txt", _trickle(20, 0.05))
        await asyncio.sleep(1.2)  # long enough for the whole write, had it gone on

    asyncio.run(run())
    assert slow.landed == 0
    with pytest.raises(NotFoundError):
        memory.stat("a.txt")


def test_timeout_before_the_store_reads_the_data_cancels_the_write(
    memory: MemoryStorage,
) -> None:
    slow = SlowWrites(memory.aio, before=1.0)
    store = AsyncTimeout(slow, 0.1)

    async def run() -> None:
        with pytest.raises(OperationTimeoutError):
            await store.write("a.txt", b"payload")
        await asyncio.sleep(1.2)

    asyncio.run(run())
    assert slow.landed == 0
    with pytest.raises(NotFoundError):
        memory.stat("a.txt")


def test_timeout_while_committing_is_unknown_and_the_cancelled_write_never_lands(
    memory: MemoryStorage,
) -> None:
    slow = SlowWrites(memory.aio, commit=1.0)
    store = AsyncTimeout(slow, 0.1)

    async def run() -> None:
        with pytest.raises(OutcomeUnknownError):
            await store.write("a.txt", b"payload")
        await asyncio.sleep(1.2)

    asyncio.run(run())
    assert slow.landed == 0  # cancelled for real: no late write behind the caller's back
    with pytest.raises(NotFoundError):
        memory.stat("a.txt")


def test_timeout_within_the_deadline_returns_the_result(memory: MemoryStorage) -> None:
    store = AsyncTimeout(SlowWrites(memory.aio, before=0.01), 5.0)
    obj = asyncio.run(store.write("a.txt", _trickle(3, 0.01)))
    assert obj.content_length == 30
    assert memory.read("a.txt") == b"x" * 30


def test_timeout_of_a_read_raises_operation_timeout() -> None:
    slow = FaultyStorager(MemoryStorage(), latency=1.0)
    store = AsyncTimeout(_view(slow), 0.1)
    start = time.monotonic()
    with pytest.raises(OperationTimeoutError):
        asyncio.run(store.read("a.txt"))
    assert time.monotonic() - start < 0.9


def test_timeout_over_a_threaded_view_refuses_the_rest_of_the_data() -> None:
    memory = MemoryStorage()
    slow = FaultyStorager(memory, latency=0.0)
    view = _view(slow)
    store = AsyncTimeout(view, 0.2)

    async def run() -> None:
        with pytest.raises(OperationTimeoutError):
            await store.write("a.txt", _trickle(20, 0.05))
        await asyncio.sleep(1.2)

    asyncio.run(run())
    with pytest.raises(NotFoundError):
        memory.stat("a.txt")


_open_views: list[AsyncStorager] = []


def _view(store: Storager) -> AsyncStorager:
    """A threaded view of ``store``, closed after the test (``close_views``)."""
    view = async_view(store, threads=2)
    _open_views.append(view)
    return view


@pytest.fixture(autouse=True)
def close_views() -> Iterator[None]:
    yield
    while _open_views:
        asyncio.run(_open_views.pop().close())


# -- Retry, ReadOnly, Logged ------------------------------------------------------------------


def test_retry_retries_a_transient_failure_and_gives_up_after_max_attempts() -> None:
    flaky = FaultyStorager(MemoryStorage(), fail={"write": 2})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    store = AsyncRetry(_view(flaky), RetryPolicy(max_attempts=3), sleep=sleep)
    obj = asyncio.run(store.write("a.txt", b"hi"))
    assert obj.content_length == 2
    assert store.retries == 2 and len(waits) == 2

    always = FaultyStorager(MemoryStorage(), fail={"read": ServiceInternalError})
    store = AsyncRetry(_view(always), RetryPolicy(max_attempts=2), sleep=sleep)
    with pytest.raises(ServiceInternalError) as caught:
        asyncio.run(store.read("a.txt"))
    assert "gave up after 2 attempts" in " ".join(caught.value.__notes__)


def test_retry_never_retries_a_missing_object() -> None:
    store = AsyncRetry(MemoryStorage().aio)
    with pytest.raises(NotFoundError):
        asyncio.run(store.read("missing"))
    assert store.retries == 0


def test_readonly_refuses_changes_and_serves_reads(memory: MemoryStorage) -> None:
    memory.write("a.txt", b"hi")
    store = AsyncReadOnly(memory.aio)
    assert asyncio.run(store.read("a.txt")) == b"hi"
    with pytest.raises(PermissionDeniedError):
        asyncio.run(store.write("b.txt", b"x"))
    with pytest.raises(PermissionDeniedError):
        asyncio.run(store.delete("a.txt"))
    assert memory.read("a.txt") == b"hi"


def test_logged_reports_each_operation_once_with_its_outcome(
    memory: MemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    store = AsyncLogged(memory.aio, on_success=events.append, on_failure=events.append)

    async def run() -> None:
        await store.write("a.txt", b"hello")
        await store.read("a.txt")
        with pytest.raises(NotFoundError):
            await store.stat("missing")

    with caplog.at_level(logging.INFO, logger="storager.combinators.logged"):
        asyncio.run(run())
    assert [(e.operation, e.outcome, e.bytes) for e in events] == [
        ("write", "ok", 5),
        ("read", "ok", 5),
        ("stat", "NotFoundError", None),
    ]
    assert len(caplog.records) == 3


def test_failover_moves_to_the_alternative_and_back_after_the_probe() -> None:
    broken = FaultyStorager(MemoryStorage(), fail={"write": 1, "read": 1})
    backup = MemoryStorage()
    now = [0.0]
    store = AsyncFailover(_view(broken), backup.aio, probe_interval=10, clock=lambda: now[0])
    obj = asyncio.run(store.write("a.txt", b"hi"))
    assert obj.content_length == 2
    assert backup.read("a.txt") == b"hi"
    assert store.active == "alternative1"
    now[0] = 11.0  # the probe is due, and the primary answers again
    asyncio.run(store.write("b.txt", b"yo"))
    assert store.switches == [("primary", "alternative1"), ("alternative1", "primary")]
    assert broken.inner.read("b.txt") == b"yo"  # type: ignore[attr-defined]


def test_failover_does_not_switch_on_a_missing_object() -> None:
    backup = MemoryStorage()
    backup.write("a.txt", b"only here")
    store = AsyncFailover(MemoryStorage().aio, backup.aio)
    with pytest.raises(NotFoundError):
        asyncio.run(store.read("a.txt"))
    assert store.switches == []


def test_audited_records_what_the_sync_audited_records() -> None:
    async def changes(store: Any) -> None:
        await store.write("a.txt", b"hello")
        await store.write("b.txt", _trickle(2, 0))
        await store.copy("a.txt", "c.txt")
        await store.delete("a.txt")
        with pytest.raises(NotFoundError):
            await store.move("missing", "d.txt")

    sync_log, async_log = MemoryStorage(), MemoryStorage()
    sync_audited = Audited(MemoryStorage(), sync_log)
    asyncio.run(changes(_view(sync_audited)))
    audited = asyncio.run(AsyncAudited.open(MemoryStorage().aio, async_log.aio))
    asyncio.run(changes(audited))

    def fields(log: MemoryStorage) -> list[tuple[Any, ...]]:
        return [
            (r.seq, r.operation, r.path, r.size, r.outcome, r.checksum, r.target)
            for r in read_audit(log)
        ]

    assert fields(async_log) == fields(sync_log)
    assert [r[1] for r in fields(async_log)] == ["write", "write", "copy", "delete", "move"]
    again = asyncio.run(AsyncAudited.open(MemoryStorage().aio, async_log.aio))
    asyncio.run(again.delete("x"))
    assert [r.seq for r in read_audit(async_log)][-1] == 6


def test_router_routes_by_the_longest_mount_and_copies_across_mounts() -> None:
    root, logs = MemoryStorage(), MemoryStorage()
    store = AsyncRouter({"": root.aio, "logs/": logs.aio})

    async def run() -> list[str]:
        await store.write("logs/app.txt", b"line")
        await store.write("a.txt", b"top")
        await store.copy("logs/app.txt", "copy.txt")
        await store.move("a.txt", "logs/moved.txt")
        return [o.path async for o in store.list("")]

    listed = asyncio.run(run())
    assert logs.read("app.txt") == b"line"
    assert root.read("copy.txt") == b"line"
    assert logs.read("moved.txt") == b"top"
    with pytest.raises(NotFoundError):
        root.stat("a.txt")
    assert sorted(listed) == ["copy.txt", "logs/"]


def test_timeout_of_a_multipart_part_still_streaming_is_clean_and_stores_no_part(
    memory: MemoryStorage,
) -> None:
    store = AsyncTimeout(memory.aio, 0.2)

    async def run() -> list[Any]:
        upload = await store.create_multipart("big.bin")  # type: ignore[attr-defined]
        with pytest.raises(OperationTimeoutError, match="nothing was changed"):
            await store.write_multipart(upload, 1, _trickle(20, 0.05))  # type: ignore[attr-defined]
        await asyncio.sleep(1.2)
        return [p async for p in store.list_multipart(upload)]  # type: ignore[attr-defined]

    assert asyncio.run(run()) == []


class SlowReads(AsyncDelegate):
    """Reads that wait ``delay`` seconds after reading, before answering."""

    combinator = "slow"

    def __init__(self, inner: AsyncStorager, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay

    async def read(self, path: str, **pairs: Any) -> bytes:
        data = await self._inner.read(path, **pairs)
        await asyncio.sleep(self.delay)
        return data


def test_cached_fills_on_a_miss_and_never_with_a_version_older_than_a_write() -> None:
    front, back = MemoryStorage(), MemoryStorage()
    back.write("a.txt", b"old")
    store = AsyncCached(front.aio, SlowReads(back.aio, 0.2))

    async def run() -> bytes:
        slow_read = asyncio.create_task(store.read("a.txt"))  # misses, reads "old" slowly
        await asyncio.sleep(0.05)
        await store.write("a.txt", b"new")  # a change starts after the read began
        assert await slow_read == b"old"
        return await store.read("a.txt")

    assert asyncio.run(run()) == b"new"
    assert front.read("a.txt") == b"new"  # the slow read did not put "old" in front
    assert (store.hits, store.misses) == (1, 1)

    asyncio.run(store.delete("a.txt"))
    with pytest.raises(NotFoundError):
        front.stat("a.txt")
    with pytest.raises(NotFoundError):
        back.stat("a.txt")


def test_failover_pins_an_upload_to_the_store_that_created_it() -> None:
    broken = FaultyStorager(MemoryStorage(), fail={"create_multipart": 1})
    backup = MemoryStorage()
    store = AsyncFailover(_view(broken), backup.aio)

    async def run() -> None:
        upload = await store.create_multipart("big.bin")  # type: ignore[attr-defined]
        assert upload.upload_id.startswith("alternative1:")
        part = await store.write_multipart(upload, 1, b"abc")  # type: ignore[attr-defined]
        await store.complete_multipart(upload, [part])  # type: ignore[attr-defined]

    asyncio.run(run())
    assert backup.read("big.bin") == b"abc"


def test_cached_reader_that_reads_to_the_end_fills_the_front() -> None:
    front, back = MemoryStorage(), MemoryStorage()
    back.write("a.bin", b"x" * 5000)
    back.write("b.bin", b"y" * 5000)
    store = AsyncCached(front.aio, back.aio)

    async def run() -> None:
        async with await store.open_reader("a.bin") as reader:
            while await reader.read(1024):
                pass
        async with await store.open_reader("b.bin") as reader:
            await reader.seek(10)  # not from the start: nothing to fill with
            await reader.read()

    asyncio.run(run())
    assert front.read("a.bin") == b"x" * 5000
    with pytest.raises(NotFoundError):
        front.stat("b.bin")


def test_describe_and_trace_show_the_async_twins_as_the_sync_ones() -> None:
    mem = MemoryStorage()
    store = AsyncLogged(AsyncRetry(mem.aio))
    sync_text = describe(Logged(Retry(mem)))
    assert describe(store) == sync_text  # the same tree, labels and capabilities
    assert sync_text.splitlines()[1].startswith("└── inner: retry attempts=")
    assert describe(store, format="mermaid") == describe(Logged(Retry(mem)), format="mermaid")

    async def main() -> bytes:
        await store.write("a", b"x")
        return await store.read("a")

    with trace() as t:
        assert asyncio.run(main()) == b"x"
    labels = [label.split()[0] for label in t.nodes()]
    assert labels == ["logged", "retry", "memory"] * 2  # write, then read: each node once
    assert "write a ok" in t.render() and "read a ok" in t.render()
