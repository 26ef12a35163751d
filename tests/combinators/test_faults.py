"""Fault tests: FaultyStorager under each combinator, on real memory and fs stores."""

from __future__ import annotations

import io
import random
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from storager import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ServiceInternalError,
    Storager,
)
from storager.combinators import (
    Cached,
    Failover,
    Mirror,
    MirrorError,
    Retry,
    RetryPolicy,
    Timeout,
)
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing.faulty import Fault, FaultyStorager

MiB = 1 << 20


def _chunks(n: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 251]) * size


# -- FaultyStorager itself ------------------------------------------------------------


def test_faulty_fails_first_n_writes_then_succeeds(mem: MemoryStorage) -> None:
    faulty = FaultyStorager(mem, fail={"write": 2})
    for _ in range(2):
        with pytest.raises(ServiceInternalError) as info:
            faulty.write("a", b"x")
        assert info.value.retryable
    faulty.write("a", b"x")
    assert mem.read("a") == b"x"
    assert faulty.calls["write"] == 3


def test_faulty_cut_write_leaves_no_object(fs: FsStorage) -> None:
    faulty = FaultyStorager(fs, fail_after_bytes=100_000)
    with pytest.raises(ServiceInternalError):
        faulty.write("cut.bin", _chunks(4))
    with pytest.raises(NotFoundError):
        fs.stat("cut.bin")


def test_faulty_cut_reader_raises_after_n_bytes(mem: MemoryStorage) -> None:
    mem.write("a", b"x" * 1000)
    faulty = FaultyStorager(mem, fail_after_bytes=10)
    reader = faulty.open_reader("a")
    assert reader.read(10) == b"x" * 10
    with pytest.raises(ServiceInternalError):
        reader.read(10)
    with pytest.raises(ServiceInternalError):
        faulty.read("a")


def test_faulty_predicate_and_skip() -> None:
    inner = MemoryStorage()
    faulty = FaultyStorager(
        inner, fail={"*": Fault(error=PermissionDeniedError, skip=1, when=lambda p: "x" in p)}
    )
    faulty.write("x1", b"")  # skipped
    with pytest.raises(PermissionDeniedError):
        faulty.write("x2", b"")
    faulty.write("ok", b"")


# -- Mirror: rollback -----------------------------------------------------------------


@pytest.mark.parametrize("write", ["sequential", "parallel"])
@pytest.mark.parametrize("kind", ["bytes", "stream"])
def test_mirror_rollback_leaves_no_partial_copies(
    write: str, kind: str, mem: MemoryStorage, fs: FsStorage
) -> None:
    third = MemoryStorage()
    broken = FaultyStorager(third, fail={"write": 1})
    mirror = Mirror({"a": mem, "b": fs, "c": broken}, write=write)
    data = b"new" * 100_000 if kind == "bytes" else _chunks(8)
    with pytest.raises(MirrorError) as info:
        mirror.write("obj.bin", data)
    err = info.value
    assert isinstance(err, ServiceInternalError)  # also the failing target's class
    assert "c: ServiceInternalError" in str(err)
    for store in (mem, fs, third):
        with pytest.raises(NotFoundError):
            store.stat("obj.bin")
    assert set(err.outcomes) == {"a", "b", "c"}
    mirror.close()


@pytest.mark.parametrize("write", ["sequential", "parallel"])
def test_mirror_rollback_restores_previous_version(
    write: str, mem: MemoryStorage, fs: FsStorage
) -> None:
    mirror = Mirror({"a": mem, "b": fs, "c": FaultyStorager(MemoryStorage())}, write=write)
    mirror.write("doc.txt", b"version 1")
    mirror.children()["c"].fail = {"write": 1}  # type: ignore[attr-defined]
    with pytest.raises(MirrorError) as info:
        mirror.write("doc.txt", io.BytesIO(b"version 2, longer"))
    assert mem.read("doc.txt") == b"version 1"
    assert fs.read("doc.txt") == b"version 1"
    assert "a: ok (rolled back)" in str(info.value) or "a: cancelled" in str(info.value)
    mirror.close()


def test_mirror_sequential_stops_at_first_failure(mem: MemoryStorage, fs: FsStorage) -> None:
    broken = FaultyStorager(MemoryStorage(), fail={"write": ServiceInternalError})
    mirror = Mirror({"broken": broken, "a": mem, "b": fs})
    with pytest.raises(MirrorError) as info:
        mirror.write("x", b"1")
    assert info.value.outcomes["a"] == "not attempted"
    assert info.value.outcomes["b"] == "not attempted"
    assert broken.calls["write"] == 1
    mirror.close()


def test_mirror_stream_is_read_once_in_bounded_memory(tmp_path: Path) -> None:
    targets = {f"t{i}": FsStorage(root=str(tmp_path / f"t{i}")) for i in range(3)}
    mirror = Mirror(targets, write="parallel", rollback="delete")
    reads = 0

    def source() -> Iterator[bytes]:
        nonlocal reads
        for chunk in _chunks(32, MiB):
            reads += 1
            yield chunk

    tracemalloc.start()
    try:
        mirror.write("big.bin", source())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reads == 32
    for t in targets.values():
        assert t.stat("big.bin").content_length == 32 * MiB
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB for 32 MiB to 3 targets"
    mirror.close()


# -- Mirror: reads --------------------------------------------------------------------


def test_mirror_race_returns_fastest_healthy_target() -> None:
    slow, fast_broken, fast = MemoryStorage(), MemoryStorage(), MemoryStorage()
    for store, content in ((slow, b"slow"), (fast_broken, b"broken"), (fast, b"fast")):
        store.write("k", content)
    mirror = Mirror(
        {
            "slow": FaultyStorager(slow, latency=0.5),
            "broken": FaultyStorager(fast_broken, fail={"read": ServiceInternalError}),
            "fast": FaultyStorager(fast, latency=0.02),
        },
        read="race",
    )
    start = time.perf_counter()
    assert mirror.read("k") == b"fast"
    assert time.perf_counter() - start < 0.4
    mirror.close()


def test_mirror_first_falls_through_missing_and_failing(mem: MemoryStorage) -> None:
    mem.write("k", b"third")
    failing = FaultyStorager(MemoryStorage(), fail={"*": ServiceInternalError})
    mirror = Mirror({"missing": MemoryStorage(), "failing": failing, "good": mem})
    assert mirror.read("k") == b"third"
    assert mirror.stat("k").content_length == 5
    assert [o.path for o in mirror.list("", targets=["good"])] == ["k"]
    with pytest.raises(NotFoundError):
        mirror.read("absent", targets=["missing"])
    mirror.close()


def test_mirror_targets_and_order_are_checked(mem: MemoryStorage, fs: FsStorage) -> None:
    mirror = Mirror({"a": mem, "b": fs})
    mirror.write("only-b", b"1", targets=["b"])
    assert mem.metadata() is not None and fs.read("only-b") == b"1"
    with pytest.raises(NotFoundError):
        mem.stat("only-b")
    with pytest.raises(InvalidArgumentError, match="unknown target 'z'"):
        mirror.read("x", targets=["z"])
    with pytest.raises(InvalidArgumentError):
        mirror.set_standard_order(["b", "nope"])
    mirror.set_standard_order(["b"])
    assert mirror.standard_order == ["b", "a"]
    with pytest.raises(InvalidArgumentError):
        Mirror({"a": mem}, write="sometimes")
    mirror.close()


# -- Retry ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_retry_recovers_from_transient_failures(mem: MemoryStorage) -> None:
    clock = FakeClock()
    store = Retry(
        FaultyStorager(mem, fail={"write": 3}),
        RetryPolicy(initial_backoff=0.1, jitter=0),
        sleep=clock.sleep,
        clock=clock.clock,
    )
    store.write("a", b"x")
    assert mem.read("a") == b"x"
    assert clock.sleeps == [0.1, 0.2, 0.4]


def test_retry_gives_up_within_budget(mem: MemoryStorage) -> None:
    clock = FakeClock()
    faulty = FaultyStorager(mem, fail={"read": ServiceInternalError})
    store = Retry(
        faulty,
        RetryPolicy(max_attempts=100, initial_backoff=0.5, max_backoff=4, budget=10, jitter=0),
        sleep=clock.sleep,
        clock=clock.clock,
    )
    with pytest.raises(ServiceInternalError) as info:
        store.read("a")
    assert clock.now <= 10
    assert sum(clock.sleeps) <= 10
    assert any("budget" in note for note in info.value.__notes__)
    assert faulty.calls["read"] == len(clock.sleeps) + 1 < 100


def test_retry_passes_non_retryable_errors_at_once(mem: MemoryStorage) -> None:
    clock = FakeClock()
    faulty = FaultyStorager(mem)
    store = Retry(faulty, sleep=clock.sleep, clock=clock.clock)
    with pytest.raises(NotFoundError):
        store.read("missing")
    assert faulty.calls["read"] == 1 and clock.sleeps == []


def test_retry_buffers_small_streams_and_refuses_to_replay_large_ones(
    mem: MemoryStorage,
) -> None:
    clock = FakeClock()
    faulty = FaultyStorager(mem, fail={"write": 1})
    store = Retry(
        faulty, RetryPolicy(buffer_limit=256 * 1024), sleep=clock.sleep, clock=clock.clock
    )
    store.write("small", _chunks(2))  # 128 KiB: buffered, retried
    assert len(mem.read("small")) == 128 * 1024
    faulty.fail = {"write": 1}
    with pytest.raises(ServiceInternalError) as info:
        store.write("large", _chunks(8))  # 512 KiB: one attempt only
    assert any("cannot be replayed" in note for note in info.value.__notes__)
    assert faulty.calls["write"] == 3


# -- Timeout, Failover ----------------------------------------------------------------


def test_timeout_raises_operation_timeout(mem: MemoryStorage) -> None:
    mem.write("a", b"x")
    store = Timeout(FaultyStorager(mem, latency={"read": 0.5}), 0.05)
    start = time.perf_counter()
    with pytest.raises(TimeoutError) as info:
        store.read("a")
    assert time.perf_counter() - start < 0.4
    assert info.value.retryable  # type: ignore[attr-defined]
    assert store.stat("a").content_length == 1
    store.close()


def test_failover_switches_and_switches_back(mem: MemoryStorage, fs: FsStorage) -> None:
    clock = FakeClock()
    primary = FaultyStorager(mem)
    store = Failover(primary, fs, probe_interval=30, clock=clock.clock)
    store.write("a", b"1")
    assert store.active == "primary" and mem.read("a") == b"1"
    primary.fail = {"*": ServiceInternalError}
    store.write("b", b"2")  # fails on the primary, moves on
    assert store.active == "alternative1" and fs.read("b") == b"2"
    primary.heal()
    store.write("c", b"3")  # the probe interval has not passed: stays
    assert store.active == "alternative1"
    clock.now += 31
    store.write("d", b"4")
    assert store.active == "primary" and mem.read("d") == b"4"
    assert store.switches == [("primary", "alternative1"), ("alternative1", "primary")]


def test_failover_does_not_switch_on_not_found(mem: MemoryStorage, fs: FsStorage) -> None:
    store = Failover(mem, fs)
    with pytest.raises(NotFoundError):
        store.read("missing")
    assert store.active == "primary"


# -- Cached ---------------------------------------------------------------------------


def test_cached_failed_back_write_leaves_front_untouched(mem: MemoryStorage) -> None:
    back = FaultyStorager(MemoryStorage())
    cached = Cached(mem, back)
    cached.write("a", b"v1")
    back.fail = {"write": ServiceInternalError}
    with pytest.raises(ServiceInternalError):
        cached.write("a", b"v2")
    assert mem.read("a") == b"v1"
    assert cached.read("a") == b"v1"


def test_cached_fills_on_miss_and_evicts_lru(fs: FsStorage) -> None:
    front = MemoryStorage()
    cached = Cached(front, fs, max_bytes=10)
    for name in "abc":
        fs.write(name, b"12345")
    assert cached.read("a") == b"12345" and cached.misses == 1
    assert cached.read("a") == b"12345" and cached.hits == 1
    cached.read("b")
    cached.read("c")  # 15 bytes > 10: "a" is evicted
    with pytest.raises(NotFoundError):
        front.stat("a")
    assert front.read("c") == b"12345"


def test_cached_stays_coherent_under_concurrent_writers(fs: FsStorage) -> None:
    front = MemoryStorage()
    slow_back = FaultyStorager(fs, latency={"read": 0.002, "write": 0.001})
    cached = Cached(front, slow_back)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(tag: int) -> None:
        for i in range(40):
            cached.write("hot", f"{tag}-{i}".encode())

    def reader() -> None:
        while not stop.is_set():
            try:
                cached.read("hot")
            except NotFoundError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert cached.read("hot") == fs.read("hot")
    assert front.read("hot") == fs.read("hot")


# -- durability: no fault loses an acknowledged write ---------------------------------


def test_no_fault_loses_an_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(7)
    leaves: list[Storager] = [MemoryStorage(), FsStorage(root=str(tmp_path / "d")), MemoryStorage()]
    faulty = [FaultyStorager(leaf) for leaf in leaves]
    mirror = Mirror({f"t{i}": f for i, f in enumerate(faulty)}, write="parallel", read="race")
    store = Retry(mirror, RetryPolicy(max_attempts=2, initial_backoff=0), sleep=lambda s: None)
    acknowledged: dict[str, bytes] = {}
    for _ in range(60):
        for f in faulty:
            spec: dict[str, object] = {}
            if rng.random() < 0.2:
                spec["write"] = 1
            f.fail = spec  # type: ignore[assignment]
            f.fail_after_bytes = rng.choice([None, None, None, 5000])
        path = f"k{rng.randrange(10)}"
        content = rng.randbytes(rng.randrange(1, 20000))
        data = content if rng.random() < 0.5 else io.BytesIO(content)
        try:
            store.write(path, data)
        except MirrorError:
            continue
        except ServiceInternalError:
            continue
        acknowledged[path] = content
    for f in faulty:
        f.heal()
    assert acknowledged
    for path, content in acknowledged.items():
        # Every target holds the last acknowledged version, whatever failed since.
        for leaf in leaves:
            assert leaf.read(path) == content, path
    store.close()
