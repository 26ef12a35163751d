"""Reads that land fragments straight in the caller's buffer, and everything they fall back on.

A reader's ``readinto`` with a buffer covering whole data fragments reads them from
their backends into the buffer (``_Window.fetch_into``); anything else, or anything
wrong with such a fragment, is served from its stripe as rebuilt by ``fetch_stripe``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from storager import ServiceInternalError
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Stripes
from storager.combinators.striped import _halves as halves
from storager.combinators.striped import _in_place as in_place
from storager.combinators.striped._spare import PagePool, Scratch, Spare

from .conftest import Rig
from .conftest import fast_rig as _fast_rig

Make = Callable[..., Rig]
KiB = 1024
CHUNK = KiB  # the rig's chunk_size

CODECS = {
    "rs42-isa-l": lambda: ReedSolomon(4, 2, library="isa-l"),
    "rs42-pyeclib": lambda: ReedSolomon(4, 2, library="pyeclib"),
    "replicas3": lambda: Replicas(3),
    "stripes": lambda: Stripes(),
}


def _fragment_reads(rig: Rig) -> tuple[int, int]:
    """(open_reader calls, read calls) the backends have seen."""
    calls = [b.calls for b in rig.backends.values()]
    return sum(c["open_reader"] for c in calls), sum(c["read"] for c in calls)


def test_whole_fragments_go_straight_into_the_buffer(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"))
    data = os.urandom(5 * 4 * CHUNK + 1000)  # five whole stripes and a short, padded one
    rig.store.write("obj", data)
    before = _fragment_reads(rig)
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(memoryview(out)[: 5 * 4 * CHUNK]) == 5 * 4 * CHUNK
        assert reader.read() == data[5 * 4 * CHUNK :]
    assert bytes(out[: 5 * 4 * CHUNK]) == data[: 5 * 4 * CHUNK]
    opened, read = (a - b for a, b in zip(_fragment_reads(rig), before, strict=True))
    # The 20 data fragments of the whole stripes were opened and read into `out`; only the
    # last stripe (its last fragment padded) was fetched whole, 4 fragments.
    assert (opened, read) == (20, 4)


@pytest.mark.parametrize("name", list(CODECS))
def test_random_reads_and_seeks_return_the_object(rig_factory: Make, name: str) -> None:
    codec: Codec = CODECS[name]()
    rig = rig_factory(codec)
    data = os.urandom(7 * 4 * CHUNK + 333)
    rig.store.write("obj", data)
    rng = random.Random(name)
    with rig.store.open_reader("obj") as reader:
        for _ in range(60):
            pos = rng.randrange(len(data))
            size = rng.choice([1, 100, CHUNK, 3 * CHUNK + 5, 8 * KiB, 16 * KiB, 40 * KiB])
            reader.seek(pos)
            if rng.random() < 0.5:
                assert reader.read(size) == data[pos : pos + size]
            else:
                buffer = bytearray(size)
                n = reader.readinto(buffer)
                assert bytes(buffer[:n]) == data[pos : pos + n] and n > 0
    with rig.store.open_reader("obj", offset=CHUNK + 1, size=5 * 4 * CHUNK) as reader:
        assert reader.read() == data[CHUNK + 1 : CHUNK + 1 + 5 * 4 * CHUNK]


@pytest.mark.parametrize(
    "damage",
    ["flipped byte", "one byte short", "one byte longer", "missing", "backend failing"],
)
def test_a_bad_fragment_is_never_returned_and_is_recorded_for_heal(
    rig_factory: Make, damage: str
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"))
    data = os.urandom(3 * 4 * CHUNK)
    rig.store.write("obj", data)
    name, key = rig.manifest("obj")["stripes"][1][2][2][:2]  # stripe 1, data fragment 2
    inner = rig.inner[name]
    raw = bytearray(inner.read(key))
    if damage == "flipped byte":
        raw[10] ^= 0x01
        inner.write(key, bytes(raw))
    elif damage == "one byte short":
        inner.write(key, bytes(raw[:-1]))
    elif damage == "one byte longer":
        inner.write(key, bytes(raw) + b"x")
    elif damage == "missing":
        inner.delete(key)
    else:
        rig.backends[name].fail = {
            "open_reader": ServiceInternalError,
            "read": ServiceInternalError,
        }
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    if damage == "backend failing":
        assert rig.store.health()[name].last_error is not None
        return
    reports = rig.store.heal()  # the read recorded the object as degraded
    assert [(r.path, r.rebuilt) for r in reports] == [("obj", 1)]
    with rig.store.open_reader("obj") as reader:
        assert reader.read() == data


def test_fragments_on_a_down_backend_are_not_asked_for(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    data = os.urandom(4 * 4 * CHUNK)
    rig.store.write("obj", data)
    name = rig.manifest("obj")["stripes"][0][2][0][0]
    rig.backends[name].fail = {"open_reader": ServiceInternalError, "read": ServiceInternalError}
    with rig.store.open_reader("obj") as reader:
        assert reader.read(4 * CHUNK) == data[: 4 * CHUNK]  # the failure marks it down
    assert not rig.store.health()[name].up
    asked = rig.backends[name].calls["open_reader"] + rig.backends[name].calls["read"]
    with rig.store.open_reader("obj") as reader:
        assert reader.read() == data
    assert rig.backends[name].calls["open_reader"] + rig.backends[name].calls["read"] == asked


def test_missing_data_fragments_are_rebuilt_in_place_from_the_fewest_reads(
    rig_factory: Make,
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    data = os.urandom(6 * 4 * CHUNK)
    rig.store.write("obj", data)
    # Two backends down: every stripe misses two of its six fragments.
    down = list(rig.backends)[:2]
    _down(rig, down)
    before = _fragment_reads(rig)
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    opened, read = (a - b for a, b in zip(_fragment_reads(rig), before, strict=True))
    stripes = rig.manifest("obj")["stripes"]
    data_down = sum(1 for s in stripes for f in s[2][:4] if f[0] in down)
    # Each good data fragment read once, in place; per missing data fragment, one
    # parity fragment read beside them, into the reader's scratch (the data fragments
    # in place are the other sources): no second round of reads.
    assert data_down > 0
    assert (opened, read) == (6 * 4, 0)
    assert all(rig.backends[name].calls["open_reader"] == 0 for name in down)


@pytest.mark.parametrize("algorithm", ["xxh3", "sha256", "crc32"])
@pytest.mark.parametrize("where", ["first piece", "a middle piece", "last byte"])
def test_fragments_checked_piece_by_piece_catch_damage_in_any_piece(
    rig_factory: Make, algorithm: str, where: str
) -> None:
    # Fragments of 2.5 MiB arrive in three pieces of at most 1 MiB (``_core.PIECE``),
    # each digested as it lands: damage anywhere in any piece is caught.
    chunk = 5 * (1 << 19)
    rig = rig_factory(
        ReedSolomon(4, 2, library="isa-l"), chunk_size=chunk, fragment_digest=algorithm
    )
    data = os.urandom(4 * chunk)
    rig.store.write("obj", data)
    name, key = rig.manifest("obj")["stripes"][0][2][1][:2]
    raw = bytearray(rig.inner[name].read(key))
    at = {"first piece": 10, "a middle piece": (1 << 20) + 12_345, "last byte": len(raw) - 1}
    raw[at[where]] ^= 0x40
    rig.inner[name].write(key, bytes(raw))
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    assert [(r.path, r.rebuilt) for r in rig.store.heal()] == [("obj", 1)]


def _down(rig: Rig, names: list[str]) -> None:
    for name in names:
        rig.backends[name].fail = {
            "open_reader": ServiceInternalError,
            "read": ServiceInternalError,
        }
        rig.store.mark_down(name)


def test_half_stripe_reads_of_a_degraded_object_read_each_stripe_once(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    data = os.urandom(6 * 4 * CHUNK)
    rig.store.write("obj", data)
    _down(rig, list(rig.backends)[:2])
    stripes = rig.manifest("obj")["stripes"]
    # Every stripe misses two fragments; most miss a data fragment in one half only.
    assert sum(1 for s in stripes if any(f[0] in list(rig.backends)[:2] for f in s[2][:4])) >= 4
    before = _fragment_reads(rig)
    got = bytearray()
    buffer = bytearray(2 * CHUNK)  # half a stripe per call
    with rig.store.open_reader("obj") as reader:
        while n := reader.readinto(buffer):
            got += buffer[:n]
    assert bytes(got) == data
    opened, read = (a - b for a, b in zip(_fragment_reads(rig), before, strict=True))
    # Each stripe read once: four fragments (data ones, and parity for the missing),
    # the half outside the first request kept (the spare) and copied out for the second.
    assert (opened, read) == (6 * 4, 0)


def test_a_reader_ending_inside_a_degraded_stripe_reads_only_what_it_covers(
    rig_factory: Make,
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    data = os.urandom(2 * 4 * CHUNK)
    rig.store.write("obj", data)
    _down(rig, [rig.manifest("obj")["stripes"][0][2][3][0]])  # data fragment 3 of stripe 0
    before = _fragment_reads(rig)
    buffer = bytearray(2 * CHUNK)
    with rig.store.open_reader("obj", offset=0, size=2 * CHUNK) as reader:
        assert reader.readinto(buffer) == 2 * CHUNK
    assert bytes(buffer) == data[: 2 * CHUNK]
    opened, read = (a - b for a, b in zip(_fragment_reads(rig), before, strict=True))
    # The reader stops inside the stripe: no spare for a rest it will never ask for.
    assert (opened, read) == (2, 0)


def test_scratch_keeps_only_a_few_buffers_between_requests_and_gives_back_the_rest() -> None:
    pool = PagePool(keep=1 << 20)
    scratch = Scratch(pool, keep=2)
    views = [scratch.take(4096) for _ in range(6)]
    assert all(len(v) == 4096 for v in views) and pool.mapped == 6
    del views
    scratch.reclaim()
    assert len(scratch._free) == 2 and len(pool._free) == 4
    again = scratch.take(4096)  # reused, not mapped anew
    assert len(scratch._free) == 1 and len(again) == 4096
    del again
    scratch.reclaim()
    scratch.release()
    assert scratch._free == [] and len(pool._free) == 6
    assert len(pool.take(4096)) >= 4096 and pool.mapped == 6  # the next reader's


def test_the_page_pool_keeps_at_most_its_bound_and_nothing_once_cleared() -> None:
    pool = PagePool(keep=3 * 4096)
    taken = [pool.take(4096) for _ in range(5)]
    assert pool.mapped == 5
    pool.give(taken)
    assert sum(len(b) for b in pool._free) == 3 * 4096  # two let go
    assert len(pool.take(8192)) >= 8192 and pool.mapped == 6  # none fits: mapped
    assert len(pool.take(100)) >= 100 and pool.mapped == 6  # one fits: reused
    pool.clear()
    assert pool._free == []


def _read_halves(reader: Any, size: int) -> bytes:
    """Read all of ``reader`` in raw requests of half a stripe (the spare serves each
    second half)."""
    got = bytearray()
    buffer = bytearray(2 * CHUNK)
    while n := reader.raw.readinto(buffer):
        got += buffer[:n]
    assert len(got) == size
    return bytes(got)


def test_degraded_readers_reuse_the_store_s_buffers_and_never_share_them(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    one_data, two_data = os.urandom(6 * 4 * CHUNK), os.urandom(6 * 4 * CHUNK)
    rig.store.write("one", one_data)
    rig.store.write("two", two_data)
    _down(rig, list(rig.backends)[:2])
    spared = [0]
    take = Spare.take

    def counting(self: Spare, index: int, size: int) -> memoryview:
        spared[0] += 1
        return take(self, index, size)

    monkeypatch.setattr(Spare, "take", counting)
    pages = rig.store._core.pages
    with rig.store.open_reader("one") as reader:
        assert _read_halves(reader, len(one_data)) == one_data
    mapped = pages.mapped
    assert spared[0] >= 4 and mapped >= 1  # the spare served second halves
    for _ in range(3):
        with rig.store.open_reader("one") as reader:
            assert _read_halves(reader, len(one_data)) == one_data
    assert pages.mapped == mapped  # later readers took what the first gave back
    # Two readers of different objects at once, their half-stripe requests
    # interleaved: a spare or scratch shared between them would mix their bytes.
    readers = rig.store.open_reader("one"), rig.store.open_reader("two")
    got: list[bytearray] = [bytearray(), bytearray()]
    buffer = bytearray(2 * CHUNK)
    for _ in range(len(one_data) // len(buffer)):
        for reader, into in zip(readers, got, strict=True):
            n = reader.raw.readinto(buffer)  # type: ignore[attr-defined]
            into += buffer[:n]
    for reader in readers:
        reader.close()
    assert bytes(got[0]) == one_data and bytes(got[1]) == two_data
    rig.store.close()
    assert pages._free == []


def test_a_closed_store_s_pool_keeps_nothing_given_back_later() -> None:
    pool = PagePool(keep=1 << 20)
    buffer = pool.take(4096)
    pool.clear()
    pool.give([buffer])  # a reader closed after its store
    assert pool._free == []


def test_giving_back_on_a_thread_holding_the_pool_never_waits() -> None:
    pool = PagePool(keep=1 << 20)
    buffer = pool.take(4096)

    def collected_inside_take() -> None:
        with pool._lock:  # as if a collection closed a reader inside take()
            pool.give([buffer])

    thread = threading.Thread(target=collected_inside_take, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert pool.take(4096) is buffer and pool.mapped == 1  # sorted in by the next take


@pytest.mark.parametrize("name", ["rs42-isa-l", "replicas3", "stripes"])
def test_unaligned_reads_and_seeks_of_a_degraded_object_return_it(
    rig_factory: Make, name: str
) -> None:
    codec: Codec = CODECS[name]()
    rig = rig_factory(codec, failures_to_down=1, cooldown=60.0)
    data = os.urandom(7 * 4 * CHUNK + 333)
    rig.store.write("obj", data)
    _down(rig, list(rig.backends)[: codec.parity])  # as many down as the codec survives
    rng = random.Random(name)
    with rig.store.open_reader("obj") as reader:
        for _ in range(80):
            if rng.random() < 0.3:
                reader.seek(rng.randrange(len(data)))
            pos = reader.tell()
            size = rng.choice([1, 100, CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 7, 3 * CHUNK])
            buffer = bytearray(size)
            n = reader.readinto(buffer)
            assert bytes(buffer[:n]) == data[pos : pos + n]
            assert n > 0 or pos >= len(data)
            if pos >= len(data):
                reader.seek(0)


def test_a_bad_fragment_meant_for_the_spare_is_never_served(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), failures_to_down=1, cooldown=60.0)
    data = os.urandom(4 * CHUNK)
    rig.store.write("obj", data)
    fragments = rig.manifest("obj")["stripes"][0][2]
    _down(rig, [fragments[0][0]])  # the first half misses data fragment 0
    name, key = fragments[3][:2]  # the second half's fragment 3, read into the spare
    raw = bytearray(rig.inner[name].read(key))
    raw[5] ^= 0x01
    rig.inner[name].write(key, bytes(raw))
    buffer = bytearray(2 * CHUNK)
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == 2 * CHUNK
        assert bytes(buffer) == data[: 2 * CHUNK]
        assert reader.readinto(buffer) == 2 * CHUNK
        assert bytes(buffer) == data[2 * CHUNK :]
    rig.heal_backends()
    assert [r.path for r in rig.store.heal()] == ["obj"]
    assert rig.store.read("obj") == data


@pytest.mark.parametrize("damage", ["corrupt parity", "parity backend failing"])
def test_a_bad_parity_fragment_is_passed_over_when_rebuilding_in_place(
    rig_factory: Make, damage: str
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"))
    data = os.urandom(2 * 4 * CHUNK)
    rig.store.write("obj", data)
    fragments = rig.manifest("obj")["stripes"][0][2]
    data_backend = fragments[1][0]
    rig.backends[data_backend].fail = {
        "open_reader": ServiceInternalError,
        "read": ServiceInternalError,
    }
    name, key = fragments[4][:2]  # the parity fragment a rebuild asks for first
    if damage == "corrupt parity":
        raw = bytearray(rig.inner[name].read(key))
        raw[0] ^= 0x01
        rig.inner[name].write(key, bytes(raw))
    else:
        rig.backends[name].fail = {"read": ServiceInternalError}
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    rig.heal_backends()
    reports = rig.store.heal()
    assert [r.path for r in reports] == ["obj"]
    assert rig.store.read("obj") == data


def test_a_replica_on_a_down_backend_is_copied_in_place_from_another(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(3), failures_to_down=1, cooldown=60.0)
    data = os.urandom(5 * CHUNK)
    rig.store.write("obj", data)
    first = rig.manifest("obj")["stripes"][0][2][0][0]
    rig.store.mark_down(first)
    with rig.store.open_reader("obj") as reader:
        assert reader.read() == data
    assert rig.backends[first].calls["open_reader"] == 0


def test_a_never_written_data_fragment_is_rebuilt_in_place_and_recorded(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"))
    data = os.urandom(4 * CHUNK)
    rig.store.write("obj", data)
    # As a write that found no backend for data fragment 2 leaves it: null, no chunk.
    doc = rig.manifest("obj")
    name, key = doc["stripes"][0][2][2][:2]
    rig.inner[name].delete(key)
    doc["stripes"][0][2][2] = None
    rig.manifests.inner.write("obj", json.dumps(doc).encode())
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    assert [(r.path, r.rebuilt) for r in rig.store.heal()] == [("obj", 1)]
    assert None not in rig.manifest("obj")["stripes"][0][2]
    assert rig.store.read("obj") == data


def test_a_slow_fragment_is_hedged_in_a_direct_read(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), hedge_after=0.1)
    data = os.urandom(2 * 4 * CHUNK)
    rig.store.write("obj", data)
    slow = rig.manifest("obj")["stripes"][0][2][1][0]  # data fragment 1 of stripe 0
    rig.backends[slow].latency = {"open_reader": 5.0}
    out = bytearray(len(data))
    began = time.monotonic()
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    # Given up after 0.1 s and served from parity: nowhere near the backend's 5 s.
    assert time.monotonic() - began < 2.5
    assert bytes(out) == data


class _Interrupt(BaseException):
    """What a signal handler raises in the middle of a read (as KeyboardInterrupt)."""


@pytest.mark.parametrize("hedge_after", [None, 30.0])
def test_no_thread_writes_into_the_buffer_after_readinto_raised(
    rig_factory: Make, hedge_after: float | None
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), hedge_after=hedge_after)
    data = os.urandom(4 * 4 * CHUNK)
    rig.store.write("obj", data)
    first = rig.manifest("obj")["stripes"][0][2][0][0]
    for name, backend in rig.backends.items():
        if name != first:
            backend.latency = {"open_reader": 0.3}

    def interrupt(*_: object) -> None:
        raise _Interrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    out = bytearray(len(data))
    try:
        with rig.store.open_reader("obj") as reader:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            with pytest.raises(_Interrupt):
                reader.readinto(out)
            snapshot = bytes(out)
            time.sleep(0.6)  # the slow reads would have landed by now
            assert bytes(out) == snapshot
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_given_up_reads_are_not_failures_of_their_backends(rig_factory: Make) -> None:
    """A read given up as slow (or queued behind slow ones) says nothing of its backend."""
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), hedge_after=0.1, failures_to_down=1)
    data = os.urandom(16 * 4 * CHUNK)
    rig.store.write("obj", data)
    slow = rig.manifest("obj")["stripes"][0][2][1][0]
    rig.backends[slow].latency = {"open_reader": 0.5}
    out = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(out) == len(data)
    assert bytes(out) == data
    time.sleep(0.6)  # the given-up reads finish into nothing
    health = rig.store.health()
    assert all(h.up and h.last_error is None for h in health.values()), health
    assert slow not in rig.store._core.quick  # never read from on the caller's thread
    rig.backends[slow].latency = None
    rig.store.write("next", data[:100])  # every backend still takes fragments


def _reading_threads(rig: Rig) -> list[str]:
    """From now on, the name of the thread of each fragment read, in order."""
    names: list[str] = []
    for inner in rig.inner.values():
        original = inner.open_reader

        def recording(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            names.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        inner.open_reader = recording  # type: ignore[method-assign]
    return names


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_fast_reads_go_in_as_many_lanes_as_there_are_cpus(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch, lanes: int
) -> None:
    rig, data, backends = _fast_rig(
        rig_factory, monkeypatch, lanes, failures_to_down=1, cooldown=60.0
    )
    _down(rig, [backends[0], backends[1]])  # data fragments 0 and 1
    names = _reading_threads(rig)
    buffer = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data
    # Four reads: data fragments 2 and 3 into the buffer, parity 4 and 5 to rebuild.
    assert len(names) == 4
    mine = [n for n in names if n == threading.current_thread().name]
    pool = [n for n in names if n != threading.current_thread().name]
    if lanes == 1:  # one CPU: this thread reads them all in turn
        assert len(mine) == 4 and not pool
    elif lanes == 2:  # this thread reads two in turn, one pool task the other two
        assert len(mine) == 2 and len(pool) == 2 and len(set(pool)) == 1
    else:  # a CPU for each: this thread reads one, the pool the rest at once
        assert len(mine) == 1 and len(pool) == 3


def _read_whole_within(rig: Rig, data: bytes, seconds: float) -> None:
    """Read the object "obj" into one buffer: it is ``data``, in under ``seconds``."""
    buffer = bytearray(len(data))
    began = time.monotonic()
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert time.monotonic() - began < seconds
    assert bytes(buffer) == data


def test_a_late_read_in_a_lane_does_not_hold_up_the_reads_behind_it(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, backends = _fast_rig(rig_factory, monkeypatch, 2, hedge_after=0.1)
    # Four data reads in two lanes: this thread's [0, 2], the pool task's [1, 3].
    rig.backends[backends[1]].latency = {"open_reader": 5.0}
    # Fragment 1 given up after 0.1 s, fragment 3 (behind it) with it; both served
    # from the stripe (parity) instead of after the backend's 5 s.
    _read_whole_within(rig, data, 2.5)
    core = rig.store._core
    assert backends[1] not in core.fast | core.quick  # the late one is trusted no more


def test_a_read_given_up_behind_a_late_one_costs_its_backend_nothing(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, backends = _fast_rig(rig_factory, monkeypatch, 2, hedge_after=0.1)
    rig.backends[backends[1]].latency = {"open_reader": 0.5}  # the pool lane's first
    reached = threading.Event()
    timed = in_place._timed

    def watching(core: Any, direct: Any, hold: Any) -> None:
        try:
            timed(core, direct, hold)
        finally:
            if direct.index == 3:
                reached.set()

    monkeypatch.setattr(in_place, "_timed", watching)
    buffer = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data
    # The lane's task gets past the late read to fragment 3, given up meanwhile.
    assert reached.wait(30)
    core = rig.store._core
    assert backends[3] in core.fast and backends[3] in core.quick


def test_a_lane_that_meets_a_slow_read_hands_the_rest_to_the_pool(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 1 KiB fragment from memory comes at > 1 MB/s; with 50 ms of latency, at 20 KB/s.
    rig, data, backends = _fast_rig(rig_factory, monkeypatch, 2, 100e3, hedge_after=0.1)
    # This thread's lane is [0, 2]: fragment 0 answers slowly, fragment 2 not at all.
    rig.backends[backends[0]].latency = {"open_reader": 0.05}
    rig.backends[backends[2]].latency = {"open_reader": 5.0}
    # Fragment 2 went to the pool after fragment 0's slow answer, was given up there
    # after 0.1 s and served from parity: this thread never waited out its 5 s.
    _read_whole_within(rig, data, 2.5)
    assert backends[0] not in rig.store._core.fast


def test_a_backend_is_fast_while_its_reads_come_at_memory_speed(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"))
    data = os.urandom(4 * CHUNK)
    rig.store.write("obj", data)
    data_backends = {f[0] for f in rig.manifest("obj")["stripes"][0][2][:4]}
    buffer = bytearray(len(data))
    monkeypatch.setattr(in_place, "FAST_RATE", 1.0)
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert rig.store._core.fast == data_backends  # read into place, each fast enough
    monkeypatch.setattr(in_place, "FAST_RATE", 1e18)
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert rig.store._core.fast == set()  # too slow for this rate
    assert bytes(buffer) == data


def _degraded_halves_rig(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch, lanes: int, stripes: int
) -> tuple[Rig, bytes]:
    """Stripes of 64 KiB fragments (16 pages: a page-aligned middle), split when rebuilt;
    data fragments 0 and 1 of the first stripe on backends marked down."""
    size = 64 * KiB
    monkeypatch.setattr(halves, "SPLIT_REBUILD", size)
    rig = rig_factory(
        ReedSolomon(4, 2, library="isa-l"), chunk_size=size, failures_to_down=1, cooldown=60.0
    )
    rig.store._core.lanes = lanes
    data = os.urandom(stripes * 4 * size)
    rig.store.write("obj", data)
    fragments = rig.manifest("obj")["stripes"][0][2]
    _down(rig, [fragments[0][0], fragments[1][0]])
    return rig, data


@pytest.mark.parametrize("lanes", [1, 2])
def test_missing_fragments_are_rebuilt_in_two_halves_at_once_given_two_cpus(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch, lanes: int
) -> None:
    rig, data = _degraded_halves_rig(rig_factory, monkeypatch, lanes, stripes=2)
    core = rig.store._core
    asked = [0]
    beside = core.beside

    def counting(fn: Callable[[], Any]) -> Any:
        asked[0] += 1
        return beside(fn)

    monkeypatch.setattr(core, "beside", counting)
    buffer = bytearray(len(data))
    before = _fragment_reads(rig)
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data
    _, read = (a - b for a, b in zip(_fragment_reads(rig), before, strict=True))
    assert read == 0  # rebuilt in place and checked (no stripe fetched the general way)
    assert asked[0] >= 1 if lanes == 2 else asked[0] == 0


def test_a_reader_codes_its_own_second_half_while_the_helper_is_busy(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data = _degraded_halves_rig(rig_factory, monkeypatch, 2, stripes=1)
    release = threading.Event()
    busy = rig.store._core.beside(lambda: release.wait(30))  # another reader's half, say
    try:
        buffer = bytearray(len(data))
        with rig.store.open_reader("obj") as reader:
            assert reader.readinto(buffer) == len(data)  # not stuck behind the helper
        assert bytes(buffer) == data
        assert not busy.done()
    finally:
        release.set()
