"""Striped with its manifests in Redis: several gateway processes share one chunk master.

Two Striped stores over the same fs backends and the same redis manifest store stand
for two gateway processes (the second opened on its own, sharing nothing in memory with
the first): what one writes the other reads, concurrent writers through both leave one
whole version, and gc through either keeps every object the other wrote.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import storager
from storager.combinators import Replicas, Striped
from storager.services.fs import FsStorage
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def open_gateway(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[[], Striped]]:
    """Open a Striped store as one gateway would: its own clients, shared state only."""
    namespace = f"striped-{secrets.token_hex(4)}"
    opened: list[Striped] = []

    def open_() -> Striped:
        backends = {name: FsStorage(root=str(tmp_path / name)) for name in ("b1", "b2", "b3")}
        manifests = storager.open(redis_server.url(), namespace=namespace)
        store = Striped(backends, codec=Replicas(2), manifests=manifests, chunk_size=64 << 10)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def test_one_gateway_reads_what_another_wrote(open_gateway: Callable[[], Striped]) -> None:
    first, second = open_gateway(), open_gateway()
    content = secrets.token_bytes(300_000)
    first.write("shared/obj.bin", content, content_type="application/x-test")
    assert second.read("shared/obj.bin") == content
    assert second.stat("shared/obj.bin").content_length == len(content)
    assert [o.path for o in second.list("shared/")] == ["shared/obj.bin"]
    second.write("shared/obj.bin", b"replaced")
    assert first.read("shared/obj.bin") == b"replaced"


def test_concurrent_writers_through_two_gateways_leave_one_whole_version(
    open_gateway: Callable[[], Striped],
) -> None:
    gateways = [open_gateway(), open_gateway()]
    versions = {bytes([65 + i]) * 200_000 for i in range(4)}
    barrier = threading.Barrier(4)

    def write(i: int) -> None:
        barrier.wait()
        gateways[i % 2].write("contended.bin", bytes([65 + i]) * 200_000)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = {gateway.read("contended.bin") for gateway in gateways}
    assert len(seen) == 1 and seen <= versions


def test_gc_through_one_gateway_keeps_what_the_other_wrote(
    open_gateway: Callable[[], Striped],
) -> None:
    first, second = open_gateway(), open_gateway()
    first.write("a.bin", b"a" * 100_000)
    second.write("b.bin", b"b" * 100_000)
    second.write("a.bin", b"A" * 100_000)  # the first version of a.bin is garbage now
    report = first.gc(grace=0)
    # Two replicas of one 100,000-byte chunk (64 KiB chunks: two chunks) were released.
    assert report.deleted == 4 and report.skipped == ()
    assert report.referenced == 8
    assert second.read("a.bin") == b"A" * 100_000
    assert first.read("b.bin") == b"b" * 100_000
