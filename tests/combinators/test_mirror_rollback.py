"""Mirror rollback never undoes another writer's acknowledged write, and keeps metadata.

Issue 8, item 4: changes of one path are serialised inside a Mirror, so the snapshot
a rollback puts back is never older than a concurrent acknowledged write; and
``rollback="restore"`` puts back content_type and user_metadata with the bytes.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storager.combinators import Mirror, MirrorError
from storager.combinators._path_locks import PathLocks
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing.faulty import Fault, FaultyStorager


def _run(fn: Any, results: dict[str, object], key: str) -> threading.Thread:
    def body() -> None:
        try:
            results[key] = fn()
        except Exception as exc:
            results[key] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread


@pytest.mark.parametrize("data", ["bytes", "stream"])
def test_failed_write_does_not_roll_back_a_concurrent_acknowledged_write(
    make: Any, data: str
) -> None:
    a, b = make("a"), make("b")
    a.write("k", b"v0")
    b.write("k", b"v0")
    # b's first write fails after a delay; the second writer's succeeds meanwhile.
    slow = FaultyStorager(b, fail={"write": 1}, latency={"write": 0.2})
    mirror = Mirror({"a": a, "b": slow}, write="parallel")

    def payload(value: bytes) -> Any:
        return value if data == "bytes" else iter([value])

    results: dict[str, object] = {}
    first = _run(lambda: mirror.write("k", payload(b"v1")), results, "first")
    time.sleep(0.05)
    second = _run(lambda: mirror.write("k", payload(b"v2")), results, "second")
    first.join(5)
    second.join(5)
    assert isinstance(results["first"], MirrorError)
    assert not isinstance(results["second"], BaseException)
    assert a.read("k") == b.read("k") == b"v2"


def test_concurrent_delete_is_not_undone_by_a_failed_write_rollback(make: Any) -> None:
    a, b = make("a"), make("b")
    a.write("k", b"v0")
    b.write("k", b"v0")
    slow = FaultyStorager(b, fail={"write": 1}, latency={"write": 0.2})
    mirror = Mirror({"a": a, "b": slow}, write="parallel")
    results: dict[str, object] = {}
    first = _run(lambda: mirror.write("k", b"v1"), results, "first")
    time.sleep(0.05)
    second = _run(lambda: mirror.delete("k"), results, "second")
    first.join(5)
    second.join(5)
    assert isinstance(results["first"], MirrorError)
    assert results["second"] is None
    assert not [o.path for o in a.list("")] and not [o.path for o in b.list("")]


def test_many_writers_with_failures_leave_the_targets_equal(make: Any) -> None:
    a, b = make("a"), make("b")
    rng = random.Random(8)
    lock = threading.Lock()

    def flaky(_: str) -> bool:
        with lock:
            return rng.random() < 0.3

    mirror = Mirror(
        {"a": a, "b": FaultyStorager(b, fail={"write": Fault(when=flaky)}, latency=0.002)},
        write="parallel",
    )
    acknowledged: set[bytes] = set()

    def writer(n: int) -> None:
        for i in range(15):
            value = f"w{n}-{i}".encode()
            try:
                mirror.write("k", value)
            except MirrorError:
                continue
            with lock:
                acknowledged.add(value)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert acknowledged
    assert a.read("k") == b.read("k")
    assert a.read("k") in acknowledged
    assert len(mirror._locks) == 0  # released entries are removed


def test_restore_puts_back_content_type_and_user_metadata(tmp_path: Path) -> None:
    a = MemoryStorage()
    b = FsStorage(root=str(tmp_path / "b"))
    mirror = Mirror({"a": a, "b": FaultyStorager(b)}, write="sequential")
    mirror.write("k", b"old", targets=["a"], content_type="text/plain", user_metadata={"x": "1"})
    b.write("k", b"old")
    before = a.stat("k")
    cast_b = mirror.children()["b"]
    assert isinstance(cast_b, FaultyStorager)
    cast_b.fail = {"write": 1}
    with pytest.raises(MirrorError) as info:
        mirror.write("k", b"new", targets=["a", "b"], content_type="image/png")
    assert info.value.outcomes["a"] == "ok (rolled back)"
    after = a.stat("k")
    assert a.read("k") == b"old"
    assert after.content_type == before.content_type == "text/plain"
    assert dict(after.user_metadata) == {"x": "1"}
    assert b.read("k") == b"old"


def test_restore_metadata_with_concurrent_writers_on_memory_targets() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    for store in (a, b):
        store.write("k", b"v0", content_type="text/plain", user_metadata={"v": "0"})
    slow = FaultyStorager(b, fail={"write": 1}, latency={"write": 0.2})
    mirror = Mirror({"a": a, "b": slow}, write="parallel")
    results: dict[str, object] = {}
    first = _run(
        lambda: mirror.write("k", b"v1", content_type="text/csv", user_metadata={"v": "1"}),
        results,
        "first",
    )
    time.sleep(0.05)
    second = _run(
        lambda: mirror.write("k", b"v2", content_type="text/html", user_metadata={"v": "2"}),
        results,
        "second",
    )
    first.join(5)
    second.join(5)
    assert isinstance(results["first"], MirrorError)
    for store in (a, b):
        obj = store.stat("k")
        assert store.read("k") == b"v2"
        assert obj.content_type == "text/html"
        assert dict(obj.user_metadata) == {"v": "2"}


def test_path_locks_serialise_one_path_and_forget_released_ones() -> None:
    locks = PathLocks()
    inside = 0
    most = 0
    guard = threading.Lock()

    def hold(paths: list[str]) -> None:
        nonlocal inside, most
        with locks.hold(paths):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.01)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=hold, args=(["p", f"q{i}"],)) for i in range(8)]
    threads += [threading.Thread(target=hold, args=([f"q{i}", "p"],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert most == 1
    assert len(locks) == 0


# -- interrupted changes (the sync form of AsyncMirror's cancellation rollback) ---------


class _Interrupting(MemoryStorage):
    """A target whose write is interrupted (Ctrl-C while it runs)."""

    def write(self, path: str, data: Any, **pairs: Any) -> Any:
        raise KeyboardInterrupt


@pytest.mark.parametrize("write", ["sequential", "parallel"])
def test_an_interrupted_write_is_rolled_back_where_it_landed(write: str) -> None:
    a, b = MemoryStorage(), _Interrupting()
    a.write("k", b"old", content_type="text/plain")
    mirror = Mirror({"a": a, "b": b}, write=write)
    with pytest.raises(KeyboardInterrupt):
        mirror.write("k", b"new")
    assert a.read("k") == b"old"  # a had it; put back before the interrupt went on
    assert a.stat("k").content_type == "text/plain"
    assert len(mirror._locks) == 0
    mirror.close()


def test_an_interrupted_streamed_write_stops_every_target_and_frees_the_pool() -> None:
    a, b = MemoryStorage(), MemoryStorage()
    for store in (a, b):
        store.write("k", b"old")
    mirror = Mirror({"a": a, "b": b}, write="parallel", workers=2, queue_chunks=1)

    def source() -> Any:
        yield b"x" * 1000
        yield b"y" * 1000
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mirror.write("k", source())
    assert a.read("k") == b.read("k") == b"old"
    # Every target's thread has ended (none waits on its feed): the pool is whole again.
    assert mirror._pool._free == mirror._pool.size
    mirror.write("k", iter([b"new"]))  # and the next streamed write gets both threads
    assert a.read("k") == b.read("k") == b"new"
    mirror.close()


def _interrupt_main_after(*delays: float) -> None:
    """Send this process SIGINT (a Ctrl-C, raised in the main thread) after each delay."""
    import os
    import signal

    def fire() -> None:
        start = time.monotonic()
        for delay in delays:
            time.sleep(max(0.0, start + delay - time.monotonic()))
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=fire, daemon=True).start()


def test_a_second_ctrl_c_while_targets_still_write_rolls_nothing_back() -> None:
    a, slow = MemoryStorage(), MemoryStorage()
    for store in (a, slow):
        store.write("k", b"old")
    b = FaultyStorager(slow, latency={"write": 1.0})
    mirror = Mirror({"a": a, "b": b}, write="parallel")
    _interrupt_main_after(0.2, 0.4)  # the first waits for b; the second gives up waiting
    with pytest.raises(KeyboardInterrupt) as caught:
        mirror.write("k", b"new")
    assert any("nothing was rolled back" in note for note in caught.value.__notes__)
    time.sleep(1.2)  # b's write, still running on its thread, lands
    # Not rolled back: a rollback of a while b still wrote would leave them differing.
    assert a.read("k") == slow.read("k") == b"new"
    assert len(mirror._locks) == 0
    mirror.close()


def test_ctrl_c_during_a_parallel_delete_does_not_wait_for_a_slow_target() -> None:
    a, slow = MemoryStorage(), MemoryStorage()
    for store in (a, slow):
        store.write("k", b"x")
    mirror = Mirror({"a": a, "b": FaultyStorager(slow, latency={"delete": 2.0})}, write="parallel")
    _interrupt_main_after(0.2)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        mirror.delete("k")
    assert time.monotonic() - start < 1.5  # nothing to roll back: no wait for b's 2 s
    time.sleep(2.0)  # let b's delete end before the pool is closed
    mirror.close()


class _Exiting(MemoryStorage):
    """A target whose own code raises an error that is no Exception."""

    def write(self, path: str, data: Any, **pairs: Any) -> Any:
        raise SystemExit(3)


def test_a_target_error_that_is_no_exception_fails_the_write_and_rolls_back() -> None:
    a = MemoryStorage()
    a.write("k", b"old")
    mirror = Mirror({"a": a, "b": _Exiting()}, write="parallel")
    with pytest.raises(MirrorError) as caught:
        mirror.write("k", b"new")
    assert "SystemExit" in str(caught.value)
    assert a.read("k") == b"old"  # rolled back, as for any failure of a target
    mirror.close()
