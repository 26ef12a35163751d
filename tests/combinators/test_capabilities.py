"""Segmenter, Linker and Presigner through every combinator, on real memory and fs stores."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from storager import (
    Appender,
    InvalidArgumentError,
    Linker,
    NotFoundError,
    PairUnsupportedError,
    PathInvalidError,
    Presigner,
    Segmenter,
    ServiceInternalError,
    Storager,
)
from storager._object import Multipart
from storager.combinators import (
    Audited,
    Cached,
    Delegate,
    Failover,
    Logged,
    Prefixed,
    ReadOnly,
    Retry,
    RetryPolicy,
    Router,
    Timeout,
    read_audit,
)
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing.faulty import FaultyStorager

T = TypeVar("T")


def _once(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks


def test_capabilities_pass_through_where_they_are_honest(mem: MemoryStorage) -> None:
    every = (Segmenter, Linker, Presigner)
    for store in [
        Retry(mem),
        Timeout(mem, 5.0),
        Logged(mem),
        Failover(mem, MemoryStorage()),
        Prefixed(mem, "p/"),
        Router({"": mem, "b/": MemoryStorage()}),
    ]:
        assert all(isinstance(store, c) for c in every), type(store).__name__
    cached = Cached(MemoryStorage(), mem)
    audited = Audited(mem, MemoryStorage())
    for store in (cached, audited):
        assert isinstance(store, Segmenter) and isinstance(store, Linker)
        assert not isinstance(store, Presigner) and not hasattr(store, "presign_write")
    readonly = ReadOnly(mem)
    for cap in (Segmenter, Appender, Linker, Presigner):
        assert not isinstance(readonly, cap)
    assert not isinstance(Router({"": mem, "f/": FsStorage(root="/tmp")}), Segmenter)


def test_prefixed_multipart_stays_inside_the_prefix(mem: MemoryStorage) -> None:
    view = Prefixed(mem, "sub/")
    mp = view.create_multipart("a.bin")
    assert mp.path == "/a.bin"  # the view's path, not the inner store's
    part = view.write_multipart(mp, 1, b"data")
    assert [p.number for p in view.list_multipart(mp)] == [1]
    assert view.complete_multipart(mp, [part]).path == "a.bin"
    assert mem.read("sub/a.bin") == b"data"
    with pytest.raises(PathInvalidError):
        view.write_multipart(Multipart("/../a.bin", mp.upload_id), 1, b"x")
    view.create_link("l.txt", "a.bin")
    assert view.stat("l.txt").link_target == "a.bin"


def test_router_multipart_links_and_urls_stay_in_one_mount(mem: MemoryStorage) -> None:
    logs = MemoryStorage(work_dir="/wd/")
    router = Router({"": mem, "logs/": logs})
    mp = router.create_multipart("logs/big.bin")
    assert mp.path == "/logs/big.bin"
    part = router.write_multipart(mp, 1, _once(b"ab", b"cd"))
    assert router.complete_multipart(mp, [part]).path == "logs/big.bin"
    assert logs.read("big.bin") == b"abcd"
    router.create_link("logs/l", "logs/big.bin")
    assert router.read("logs/l") == b"abcd"
    with pytest.raises(InvalidArgumentError):
        router.create_link("logs/x", "elsewhere.txt")
    with urllib.request.urlopen(router.presign_read("logs/big.bin"), timeout=10) as response:
        assert response.read() == b"abcd"
    router.close()


def test_router_cross_mount_copy_passes_pairs_the_destination_writes(
    mem: MemoryStorage, fs: FsStorage
) -> None:
    router = Router({"": mem, "disk/": fs})
    mem.write("a.txt", b"hello")
    router.copy("a.txt", "disk/a.txt", sync=True)  # fs write accepts sync
    assert fs.read("a.txt") == b"hello"
    router.move("disk/a.txt", "b.txt", content_type="text/plain")
    assert mem.stat("b.txt").content_type == "text/plain"
    with pytest.raises(NotFoundError):
        fs.stat("a.txt")
    with pytest.raises(PairUnsupportedError, match="sync"):
        router.copy("b.txt", "c.txt", sync=True)
    fs.write("x.txt", b"x")
    with pytest.raises(PairUnsupportedError, match="sync"):
        router.copy("disk/x.txt", "y.txt", sync=True)  # memory write takes no sync
    with pytest.raises(NotFoundError):
        mem.stat("y.txt")


def test_cached_open_reader_fills_the_front_after_a_whole_read(mem: MemoryStorage) -> None:
    front = MemoryStorage()
    cached = Cached(front, mem, max_object_bytes=1000)
    mem.write("a", b"x" * 600)
    mem.write("big", b"y" * 2000)
    with cached.open_reader("a") as reader:
        assert reader.read(100) == b"x" * 100
    with pytest.raises(NotFoundError):  # stopped early: nothing cached
        front.stat("a")
    with cached.open_reader("a") as reader:
        reader.seek(10)
        reader.read()
    with pytest.raises(NotFoundError):  # seeked: nothing cached
        front.stat("a")
    with cached.open_reader("a") as reader:
        assert reader.read() == b"x" * 600
    assert front.read("a") == b"x" * 600
    with cached.open_reader("big") as reader:
        assert reader.read() == b"y" * 2000
    with pytest.raises(NotFoundError):  # past max_object_bytes
        front.stat("big")
    hits = cached.hits
    with cached.open_reader("a") as reader:
        assert reader.read() == b"x" * 600
    assert cached.hits == hits + 1


def test_cached_open_reader_fill_loses_to_a_newer_write(mem: MemoryStorage) -> None:
    cached = Cached(MemoryStorage(), mem)
    mem.write("a", b"old")
    reader = cached.open_reader("a")
    cached.write("a", b"new")
    assert reader.read() == b"old"
    reader.close()
    assert cached.read("a") == b"new"


def test_cached_never_caches_links_so_target_writes_show(mem: MemoryStorage) -> None:
    front = MemoryStorage()
    cached = Cached(front, mem)
    cached.write("t", b"one")
    cached.create_link("l", "t")
    assert cached.read("l") == b"one"
    cached.write("t", b"two")
    assert cached.read("l") == b"two"
    with pytest.raises(NotFoundError):
        front.stat("l")


def test_cached_multipart_complete_drops_the_old_version(mem: MemoryStorage) -> None:
    front = MemoryStorage()
    cached = Cached(front, mem)
    cached.write("x", b"old")
    assert cached.read("x") == b"old" and front.read("x") == b"old"
    mp = cached.create_multipart("x")
    cached.complete_multipart(mp, [cached.write_multipart(mp, 1, b"new")])
    assert cached.read("x") == b"new"


def test_audited_records_multipart_completes_with_their_size(mem: MemoryStorage) -> None:
    log = MemoryStorage()
    store = Audited(mem, log)
    mp = store.create_multipart("m.bin")
    store.complete_multipart(mp, [store.write_multipart(mp, 1, b"12345")])
    records = [(r.operation, r.size) for r in read_audit(log)]
    assert records[-1] == ("complete_multipart", 5)
    assert ("create_multipart", None) in records


def test_failover_upload_stays_on_the_store_that_started_it() -> None:
    primary_inner, alternative = MemoryStorage(), MemoryStorage()
    primary = FaultyStorager(primary_inner)
    store = Failover(primary, alternative, probe_interval=3600)
    mp = store.create_multipart("u.bin")
    primary.fail = {"write": ServiceInternalError}
    store.write("other", b"x")  # the primary fails: the alternative takes over
    assert store.active == "alternative1"
    primary.heal()
    store.complete_multipart(mp, [store.write_multipart(mp, 1, b"part")])
    assert primary_inner.read("u.bin") == b"part"
    with pytest.raises(NotFoundError):
        alternative.stat("u.bin")
    with pytest.raises(NotFoundError):
        store.write_multipart(Multipart(mp.path, "nobody:123"), 1, b"x")


class _ConsumeThenFail(Delegate):
    """Lets each write_multipart reach the store, then reports the first one failed."""

    failed = False

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        result = super()._around(op, path, fn)
        if op == "write_multipart" and not self.failed:
            self.failed = True
            raise ServiceInternalError(op, "test", path, "answer lost")
        return result


def test_retry_replays_a_streamed_part(mem: MemoryStorage) -> None:
    store = Retry(_ConsumeThenFail(mem), RetryPolicy(initial_backoff=0.001))
    mp = store.create_multipart("r.bin")
    part = store.write_multipart(mp, 1, _once(b"ab", b"cd"))
    assert part.size == 4
    store.complete_multipart(mp, [part])
    assert mem.read("r.bin") == b"abcd"
