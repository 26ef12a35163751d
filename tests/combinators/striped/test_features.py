"""Striped's features: multipart, copy, placement, ranged reads, hedging, describe, paths."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import xxhash

from storager import InvalidArgumentError, NotFoundError, PathInvalidError
from storager._malloc import retain_freed_buffers
from storager.combinators import describe, trace
from storager.combinators.striped import ReedSolomon, Replicas, Striped, Stripes

from .conftest import Rig

Make = Callable[..., Rig]
KiB = 1024


# -- multipart ----------------------------------------------------------------------------


def test_multipart_parts_out_of_order_and_concurrently(rig_factory: Make) -> None:
    rig = rig_factory()
    store = rig.store
    datas = {n: os.urandom(5 * KiB + n) for n in range(1, 7)}
    mp = store.create_multipart("big.bin", content_type="application/x-test")
    with ThreadPoolExecutor(4) as pool:
        written = list(
            pool.map(lambda n: store.write_multipart(mp, n, datas[n]), [6, 2, 4, 1, 5, 3])
        )
    parts = {p.number: p for p in written}
    assert [p.number for p in store.list_multipart(mp)] == [1, 2, 3, 4, 5, 6]
    obj = store.complete_multipart(mp, [parts[n] for n in range(1, 7)])
    whole = b"".join(datas[n] for n in range(1, 7))
    assert store.read("big.bin") == whole
    assert obj.content_length == len(whole) and obj.etag and obj.etag.endswith("-6")
    assert store.stat("big.bin").content_type == "application/x-test"
    assert store.read("big.bin", offset=5 * KiB, size=3 * KiB) == whole[5 * KiB : 8 * KiB]
    assert rig.chunks() == rig.referenced()  # no upload record left, no part leaked
    assert not [
        o for o in rig.manifests.inner.list(".striped/uploads/", list_mode="prefix") if not o.is_dir
    ]


def test_multipart_part_written_again_replaces_and_drops_the_old(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(2), n=2)
    store = rig.store
    mp = store.create_multipart("p.bin")
    store.write_multipart(mp, 1, b"a" * 3000)
    part = store.write_multipart(mp, 1, b"b" * 2000)
    assert rig.chunks() == rig.referenced()
    store.complete_multipart(mp, [part])
    assert store.read("p.bin") == b"b" * 2000


def test_multipart_complete_refuses_stale_etag_and_unknown_part(rig_factory: Make) -> None:
    rig = rig_factory()
    store = rig.store
    mp = store.create_multipart("p.bin")
    old = store.write_multipart(mp, 1, b"first")
    store.write_multipart(mp, 1, b"second")
    with pytest.raises(InvalidArgumentError, match="etag"):
        store.complete_multipart(mp, [old])
    with pytest.raises(InvalidArgumentError, match="part 2 was not uploaded"):
        store.complete_multipart(mp, [type(old)(2, 1, "")])
    with pytest.raises(NotFoundError):
        store.stat("p.bin")
    store.abort_multipart(mp)
    assert rig.chunks() == set()
    with pytest.raises(NotFoundError):
        store.write_multipart(mp, 1, b"x")


# -- copy ---------------------------------------------------------------------------------


def test_copy_writes_a_manifest_naming_the_same_chunks(rig_factory: Make) -> None:
    rig = rig_factory()
    data = os.urandom(9 * KiB)
    rig.store.write("src", data, user_metadata={"k": "v"})
    writes = sum(b.calls["write"] for b in rig.backends.values())
    rig.store.copy("src", "dst")
    assert sum(b.calls["write"] for b in rig.backends.values()) == writes  # no data moved
    assert rig.manifest("dst")["stripes"] == rig.manifest("src")["stripes"]
    rig.store.delete("src")
    rig.store.gc(grace=0)
    assert rig.store.read("dst") == data
    assert rig.store.stat("dst").user_metadata == {"k": "v"}


# -- placement ------------------------------------------------------------------------------


def _fragments_per_backend(rig: Rig) -> Counter[str]:
    return Counter(name for name, _ in rig.chunks())


@pytest.mark.parametrize("policy", ["round_robin", "least_used", "random", "most_free"])
def test_placement_spreads_fragments_on_distinct_backends(rig_factory: Make, policy: str) -> None:
    rig = rig_factory(Replicas(2), n=5, placement=policy)
    rig.store.write("obj", os.urandom(40 * KiB))  # 40 stripes of 2 fragments
    for _, _, fragments in rig.manifest("obj")["stripes"]:
        assert len({f[0] for f in fragments}) == 2
    counts = _fragments_per_backend(rig)
    assert set(counts) == set(rig.backends)
    if policy in ("round_robin", "least_used", "most_free"):
        assert max(counts.values()) - min(counts.values()) <= 2


def test_most_free_prefers_the_backend_with_most_room(rig_factory: Make) -> None:
    quotas = {"b0": 100 * KiB, "b1": 10 * KiB, "b2": 10 * KiB, "b3": 1000 * KiB}
    rig = rig_factory(Replicas(2), n=4, placement="most_free", quotas=quotas)
    rig.store.write("obj", os.urandom(8 * KiB))
    counts = _fragments_per_backend(rig)
    assert counts["b3"] == 8 and counts["b0"] == 8 and not counts["b1"] and not counts["b2"]


def test_bad_placement_and_quota_are_refused(rig_factory: Make) -> None:
    with pytest.raises(InvalidArgumentError, match="placement"):
        rig_factory(placement="fullest")
    with pytest.raises(InvalidArgumentError, match="unknown backend"):
        rig_factory(quotas={"nope": 1})
    with pytest.raises(InvalidArgumentError, match="write_quorum"):
        rig_factory(write_quorum=3)


# -- reads ----------------------------------------------------------------------------------


def test_ranged_read_fetches_only_the_stripes_it_needs(rig_factory: Make) -> None:
    rig = rig_factory(Stripes(4), n=4)  # a stripe = 4 fragments of 1 KiB
    data = os.urandom(40 * KiB)
    rig.store.write("obj", data)
    before = sum(b.calls["read"] for b in rig.backends.values())
    assert (
        rig.store.read("obj", offset=10 * KiB + 5, size=100) == data[10 * KiB + 5 : 10 * KiB + 105]
    )
    assert sum(b.calls["read"] for b in rig.backends.values()) - before == 4


def test_slow_backend_is_hedged_by_parity(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(2, 1), n=3, hedge_after=0.05)
    data = os.urandom(2 * KiB)
    rig.store.write("obj", data)
    slow = rig.manifest("obj")["stripes"][0][2][0][0]
    rig.backends[slow].latency = {"read": 2.0, "open_reader": 2.0}
    start = time.monotonic()
    assert rig.store.read("obj") == data
    assert time.monotonic() - start < 1.5


# -- the tree, paths, metadata --------------------------------------------------------------


def test_describe_shows_codec_and_backends(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2), placement="round_robin")
    text = describe(rig.store)
    assert text.startswith(
        "striped rs(4,2) chunk_size=1024 placement=round_robin [Copier,Mover,Segmenter]"
    )
    for name in ("manifests", "b0", "b5"):
        assert f" {name}: " in text


def test_reserved_names_are_refused_and_never_listed(rig_factory: Make) -> None:
    rig = rig_factory()
    rig.store.write("visible", b"x")
    rig.store.mark_down("b0")
    rig.store.write("degraded", b"y" * 5000)  # leaves a record under .striped/
    for call in (
        lambda: rig.store.write(".striped/x", b"x"),
        lambda: rig.store.read(".striped/degraded/x"),
        lambda: rig.store.stat(".striped/"),
        lambda: rig.store.delete(".striped/uploads/"),
    ):
        with pytest.raises(PathInvalidError, match="reserved"):
            call()
    assert sorted(o.path for o in rig.store.list("")) == ["degraded", "visible"]
    assert sorted(o.path for o in rig.store.list("", list_mode="prefix")) == ["degraded", "visible"]
    assert list(rig.store.list(".striped/", list_mode="prefix")) == []


def test_stat_reports_checksum_generation_and_metadata(rig_factory: Make) -> None:
    rig = rig_factory()
    data = os.urandom(7 * KiB)
    rig.store.write("obj", data, content_type="text/x-a", user_metadata={"owner": "me"})
    stat = rig.store.stat("obj")
    # The checksum is derived from the recorded fragment digests, each the XXH3-128 of the
    # chunk as stored (the default with xxhash installed): the sha256 of every stripe's
    # length and digests, in order.
    sha = hashlib.sha256()
    for _, length, fragments in rig.manifest("obj")["stripes"]:
        for name, key, _, recorded in fragments:
            assert recorded == "xxh3:" + xxhash.xxh3_128_hexdigest(rig.inner[name].read(key))
        sha.update(f"{length}:{','.join(f[3] for f in fragments)};".encode())
    assert stat.etag == sha.hexdigest()
    assert stat.system_metadata["checksum"] == "composite:" + sha.hexdigest()
    assert stat.system_metadata["codec"] == "rs(4,2)"
    assert (stat.content_type, dict(stat.user_metadata)) == ("text/x-a", {"owner": "me"})


def test_etag_follows_the_content_not_the_write(rig_factory: Make) -> None:
    rig = rig_factory()
    data = os.urandom(7 * KiB)
    first = rig.store.write("a", data).etag
    assert rig.store.write("b", iter([data[:100], data[100:]])).etag == first
    changed = bytearray(data)
    changed[5000] ^= 1
    assert rig.store.write("c", bytes(changed)).etag != first
    assert rig.store.write("d", data[:-1]).etag != first


def test_open_reader_keeps_reading_its_version_across_overwrite_and_gc(rig_factory: Make) -> None:
    rig = rig_factory()
    old, new = os.urandom(30 * KiB), os.urandom(20 * KiB)
    rig.store.write("obj", old)
    with rig.store.open_reader("obj") as reader:
        head = reader.read(1000)
        rig.store.write("obj", new)
        assert rig.store.gc(grace=3600).deleted == 0  # the old chunks are young: kept
        assert head + reader.read() == old
    assert rig.store.read("obj") == new


def test_two_stores_sharing_backends_and_manifests_act_as_one(rig_factory: Make) -> None:
    """Two Striped instances (as two gateway processes would) over the same stores."""
    rig = rig_factory(ReedSolomon(2, 1), n=3)
    twin = Striped(rig.backends, codec=ReedSolomon(2, 1), manifests=rig.manifests, chunk_size=1024)
    versions = [bytes([65 + i]) * (3000 + 500 * i) for i in range(6)]
    seen: list[bytes] = []
    stop = threading.Event()

    def read(store: Striped) -> None:
        while True:  # at least one read, however the threads are scheduled
            seen.append(store.read("shared"))
            if stop.is_set():
                return

    rig.store.write("shared", versions[0])
    readers = [threading.Thread(target=read, args=(s,)) for s in (rig.store, twin)]
    for reader in readers:
        reader.start()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: (rig.store, twin)[i % 2].write("shared", versions[i]), range(6)))
    stop.set()
    for reader in readers:
        reader.join()
    assert seen and set(seen) <= set(versions)
    assert rig.store.read("shared") == twin.read("shared")
    twin.copy("shared", "copied")
    assert rig.store.read("copied") == twin.read("shared")
    rig.store.gc(grace=0)
    assert rig.chunks() == rig.referenced()


def test_health_recount_sees_another_store_writes(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(2), n=2)
    assert {h.bytes_used for h in rig.store.health().values()} == {0}
    twin = Striped(rig.backends, codec=Replicas(2), manifests=rig.manifests, chunk_size=1024)
    twin.write("x", b"z" * 2048)
    assert {h.bytes_used for h in rig.store.health().values()} == {0}  # counted once
    assert {h.bytes_used for h in rig.store.health(recount=True).values()} == {2048}


def test_move_publishes_the_same_chunks_and_drops_the_source(rig_factory: Make) -> None:
    rig = rig_factory()
    data = os.urandom(9 * KiB)
    rig.store.write("src", data)
    writes = sum(b.calls["write"] for b in rig.backends.values())
    rig.store.move("src", "dst")
    assert sum(b.calls["write"] for b in rig.backends.values()) == writes
    with pytest.raises(NotFoundError):
        rig.store.stat("src")
    rig.store.gc(grace=0)
    assert rig.store.read("dst") == data
    assert rig.chunks() == rig.referenced()


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_size": 0},
        {"stripes_in_flight": 0},
        {"io_workers": 0},
        {"failures_to_down": 0},
        {"cooldown": -1},
        {"hedge_after": 0},
        {"hedge_after": float("nan")},
        {"loose_pairs": "yes"},
        {"tune_malloc": 1},
    ],
)
def test_bad_tuning_is_refused(rig_factory: Make, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        rig_factory(**bad)


def test_tune_malloc_sets_glibcs_knobs_and_the_store_still_round_trips(rig_factory: Make) -> None:
    rig = rig_factory(tune_malloc=True)
    data = os.urandom(40 * KiB)
    rig.store.write("obj", data)
    assert rig.store.read("obj") == data
    # glibc on the machines this runs on: the knobs are set (again: nothing more to do).
    assert retain_freed_buffers() is True
    assert retain_freed_buffers(64 << 20) is True  # capped to glibc's 32 MiB


def test_gc_aborts_stale_uploads_only_when_asked(rig_factory: Make) -> None:
    rig = rig_factory()
    mp = rig.store.create_multipart("up.bin")
    rig.store.write_multipart(mp, 1, os.urandom(5 * KiB))
    assert rig.store.gc(grace=0).aborted_uploads == 0
    assert rig.store.gc(grace=0, stale_uploads=3600).aborted_uploads == 0  # young
    assert rig.chunks() and rig.chunks() == rig.referenced()
    assert rig.store.gc(grace=0, stale_uploads=0).aborted_uploads == 1
    assert rig.chunks() == set()
    with pytest.raises(NotFoundError):
        rig.store.write_multipart(mp, 2, b"late")
    with pytest.raises(InvalidArgumentError):
        rig.store.gc(grace=0, stale_uploads=-1)


def test_trace_shows_the_striped_node_and_the_stores_it_reached(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(2), n=2, placement="round_robin")
    rig.store.write("obj", b"x" * 100)
    with trace() as recorded:
        rig.store.read("obj")
    text = recorded.render()
    assert "striped replicas(2)" in text and "read obj ok" in text
    # One replica's chunk was fetched (whole, into the result: through a reader).
    assert "faulty: open_reader .striped/chunks/" in text
    assert "faulty: read obj" in text  # the manifest


def test_close_with_prefetches_in_flight_leaves_no_thread_behind(rig_factory: Make) -> None:
    """Closing the store must not strand a stripe task waiting for cancelled fragment reads.

    Fragment reads still queued when the pools shut down used to be cancelled without
    waking the stripe task waiting on them, which then waited forever and held the
    interpreter at exit.
    """
    before = set(threading.enumerate())
    rig = rig_factory(ReedSolomon(2, 1), n=3, io_workers=1, stripes_in_flight=4)
    rig.store.write("obj", os.urandom(64 * KiB))
    for backend in rig.backends.values():
        backend.latency = {"read": 0.02}
    reader = rig.store.open_reader("obj")
    assert len(reader.read(1)) == 1  # four stripes fetched ahead, their reads queued
    rig.store.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [t for t in set(threading.enumerate()) - before if t.name.startswith("storager")]
        if not left:
            break
        time.sleep(0.05)
    assert not left, [t.name for t in left]
    reader.close()


def test_a_write_reuses_its_stripe_and_parity_buffers(
    rig_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fresh multi-MiB buffers per stripe cost more than the copy into them."""
    from storager.combinators.striped import _writer
    from storager.combinators.striped._buffers import BufferPool

    pools: list[BufferPool] = []

    class Recorded(BufferPool):
        def __init__(self) -> None:
            super().__init__()
            pools.append(self)

    monkeypatch.setattr(_writer, "BufferPool", Recorded)
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), stripes_in_flight=2)
    # 12 stripes of 4 KiB from 1,000-byte chunks the source refills in place.
    source = bytearray(1000)
    data = os.urandom(12 * 4 * 1024)

    def chunks() -> Iterator[bytearray]:
        for i in range(0, len(data), 1000):
            source[: len(data[i : i + 1000])] = data[i : i + 1000]
            yield source[: len(data[i : i + 1000])] if i + 1000 > len(data) else source

    rig.store.write("obj", chunks())
    assert rig.store.read("obj") == data
    (pool,) = pools
    # At most stripes_in_flight + 1 stripes are cut and not yet stored, each with its
    # 2 parity buffers: 12 stripes never allocate 36 buffers.
    assert pool.allocated <= 3 * 3
