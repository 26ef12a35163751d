"""Requests of whole healthy data fragments on fast backends, planned cheaply (``_whole``),
and the general path they hand anything else to."""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from storager import ServiceInternalError
from storager.combinators.striped import _core
from storager.combinators.striped import _reader as reader_module

from .conftest import Rig, fast_rig

Make = Callable[..., Rig]


def _general_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the requests the general path (``read_in_place``) is asked to serve."""
    calls: list[int] = []
    general = reader_module.read_in_place

    def counting(*args: Any, **kwargs: Any) -> list[tuple[int, int]]:
        calls.append(1)
        return general(*args, **kwargs)

    monkeypatch.setattr(reader_module, "read_in_place", counting)
    return calls


def _asked(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Count the fragment reads each backend is asked for (into a buffer or not), as
    they start."""
    asked: collections.Counter[str] = collections.Counter()
    for method in ("get_into", "get"):
        original = getattr(_core.Core, method)

        def counting(
            self: _core.Core, name: str, *args: Any, _original: Any = original, **kwargs: Any
        ) -> Any:
            asked[name] += 1
            return _original(self, name, *args, **kwargs)

        monkeypatch.setattr(_core.Core, method, counting)
    return asked


@pytest.mark.parametrize("lanes", [1, 2])
def test_whole_healthy_fragments_skip_the_general_plan(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch, lanes: int
) -> None:
    rig, data, _ = fast_rig(rig_factory, monkeypatch, lanes)
    general = _general_calls(monkeypatch)
    block = len(data) // 4
    with rig.store.open_reader("obj") as reader:
        buffer = bytearray(2 * block)  # data fragments 0 and 1, then 2 and 3
        assert reader.readinto(buffer) == len(buffer)
        assert bytes(buffer) == data[: 2 * block]
        assert reader.readinto(buffer) == len(buffer)
        assert bytes(buffer) == data[2 * block :]
        assert not general
        # A request that covers a fragment only in part goes the general way.
        reader.seek(block // 2)
        part = bytearray(block)
        assert reader.readinto(part) == block
        assert bytes(part) == data[block // 2 : block // 2 + block]
    assert general


def test_backends_not_known_fast_go_the_general_way(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, backends = fast_rig(rig_factory, monkeypatch, 2)
    rig.store._core.fast.discard(backends[2])
    general = _general_calls(monkeypatch)
    buffer = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data and general


@pytest.mark.parametrize("damage", ["flipped byte", "one byte short", "backend failing"])
def test_a_bad_fragment_met_whole_is_reported_and_not_asked_for_again(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    rig, data, backends = fast_rig(rig_factory, monkeypatch, 2)
    name = backends[1]
    key = rig.manifest("obj")["stripes"][0][2][1][1]
    raw = bytearray(rig.inner[name].read(key))
    if damage == "flipped byte":
        raw[5] ^= 0x01
        rig.inner[name].write(key, bytes(raw))
    elif damage == "one byte short":
        rig.inner[name].write(key, bytes(raw[:-1]))
    else:
        rig.backends[name].fail = {"open_reader": ServiceInternalError}
    asked = _asked(monkeypatch)
    buffer = bytearray(len(data))
    with rig.store.open_reader("obj") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data
    # Asked once: the general path rebuilt fragment 1 from parity instead of asking again.
    assert asked[name] == 1
    if damage == "backend failing":
        assert rig.store.health()[name].last_error is not None
        return
    reports = rig.store.heal()  # the fast attempt recorded the damage it met
    assert [(r.path, r.rebuilt) for r in reports] == [("obj", 1)]
    with rig.store.open_reader("obj") as reader:
        assert reader.read() == data


def _timed_readinto(rig: Rig, path: str, size: int) -> tuple[bytes, float]:
    """Read ``path`` whole with one ``readinto``; return its bytes and the seconds taken."""
    buffer = bytearray(size)
    began = time.monotonic()
    with rig.store.open_reader(path) as reader:
        assert reader.readinto(buffer) == size
    return bytes(buffer), time.monotonic() - began


def test_a_late_fragment_is_waited_for_once(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, backends = fast_rig(rig_factory, monkeypatch, 2, hedge_after=1.0)
    # Two lanes: this thread reads fragments 0 and 2, the pool task 1 and 3.
    late = backends[1]
    rig.backends[late].latency = {"open_reader": 3.0, "read": 3.0}
    behind = backends[3]
    asked = _asked(monkeypatch)
    got, took = _timed_readinto(rig, "obj", len(data))
    assert got == data
    # Fragment 1 given up after hedge_after (1 s), then rebuilt from parity: not asked
    # again, nor waited for a second time (that would be 2 s and more).
    assert asked[late] == 1
    assert 0.9 < took < 1.9
    # Fragment 3, given up unasked behind it, is read by the general path as usual.
    assert asked[behind] == 1
    core = rig.store._core
    assert late not in core.fast | core.quick


def test_a_late_backend_across_stripes_is_waited_for_once(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = fast_rig(rig_factory, monkeypatch, 2, hedge_after=1.0)[0]
    chunk = rig.store._core.chunk_size
    data = os.urandom(3 * 4 * chunk)  # three whole stripes, one request
    rig.store.write("three", data)
    late = rig.manifest("three")["stripes"][0][2][1][0]
    rig.backends[late].latency = {"open_reader": 3.0, "read": 3.0}
    # Not quick: this thread reads nothing itself (a read of its own cannot be given
    # up), so every read of the late backend is in a pool lane, hedged.
    rig.store._core.quick.discard(late)
    got, took = _timed_readinto(rig, "three", len(data))
    assert got == data
    # Its first read given up after hedge_after (1 s), its others given up unasked:
    # the general path asks it for none of them, so nothing waits a second second.
    assert 0.9 < took < 1.9


def test_a_damaged_object_reads_the_same_through_both_paths(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = fast_rig(rig_factory, monkeypatch, 2)[0]
    data = os.urandom(4 * 4 * rig.store._core.chunk_size + 100)
    rig.store.write("big", data)
    for stripe in rig.manifest("big")["stripes"][:2]:  # a data fragment gone in two stripes
        name, key = stripe[2][0][:2]
        rig.inner[name].delete(key)
    for size in (len(data), 4 * rig.store._core.chunk_size, 2 * rig.store._core.chunk_size):
        got = bytearray()
        with rig.store.open_reader("big") as reader:
            buffer = bytearray(size)
            while n := reader.readinto(buffer):
                got += buffer[:n]
        assert bytes(got) == data, size


def test_a_bad_fragment_sends_only_its_own_stripe_the_general_way(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = fast_rig(rig_factory, monkeypatch, 2)[0]
    chunk = rig.store._core.chunk_size
    data = os.urandom(4 * 4 * chunk)  # four whole stripes
    rig.store.write("four", data)
    name, key = rig.manifest("four")["stripes"][2][2][1][:2]  # stripe 2, data fragment 1
    raw = bytearray(rig.inner[name].read(key))
    raw[0] ^= 0x01
    rig.inner[name].write(key, bytes(raw))
    asked = _asked(monkeypatch)
    buffer = bytearray(len(data))
    with rig.store.open_reader("four") as reader:
        assert reader.readinto(buffer) == len(data)
    assert bytes(buffer) == data
    # 16 data fragments read once; then stripe 2 alone again: its three good data
    # fragments and one parity fragment for the bad one (not the whole request again).
    assert sum(asked.values()) == 16 + 4
    assert [(r.path, r.rebuilt) for r in rig.store.heal()] == [("four", 1)]


def _three_stripes_one_down(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> tuple[Rig, bytes, str]:
    """Object "three": three stripes of 4 KiB chunks, the backend of stripe 0's data
    fragment 3 marked down (returned). The reader's buffer (8 KiB) is half a stripe, so
    each request of that size reaches the raw reader as it is."""
    rig = fast_rig(rig_factory, monkeypatch, 2, chunk_size=4096, failures_to_down=1, cooldown=60.0)[
        0
    ]
    data = os.urandom(3 * 4 * rig.store._core.chunk_size)
    rig.store.write("three", data)
    down = rig.manifest("three")["stripes"][0][2][3][0]
    rig.store.mark_down(down)
    return rig, data, down


def test_whole_fragments_are_planned_cheaply_again_after_a_degraded_stripe(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, down = _three_stripes_one_down(rig_factory, monkeypatch)
    chunk = rig.store._core.chunk_size
    general = _general_calls(monkeypatch)
    with rig.store.open_reader("three") as reader:
        half = bytearray(2 * chunk)
        assert reader.readinto(half) == len(half)  # stripe 0's first half: degraded
        assert bytes(half) == data[: 2 * chunk]
        assert len(general) == 1  # the general way, which keeps stripe 0's rest aside
        rig.store._core.health.ok(down)  # the backend is back
        rig.store._core.fast.add(down)
        reader.seek(4 * chunk)  # stripes 1 and 2, while the spare still holds stripe 0
        rest = bytearray(8 * chunk)
        assert reader.readinto(rest) == len(rest)
        assert bytes(rest) == data[4 * chunk :]
        assert len(general) == 1  # planned cheaply, the spare notwithstanding


def test_half_stripe_reads_of_a_degraded_stripe_read_each_fragment_once(
    rig_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, data, _ = _three_stripes_one_down(rig_factory, monkeypatch)
    chunk = rig.store._core.chunk_size
    asked = _asked(monkeypatch)
    got = bytearray()
    half = bytearray(2 * chunk)  # the reader's buffer size: each call reaches it as is
    with rig.store.open_reader("three") as reader:
        while n := reader.readinto(half):
            got += half[:n]
    assert bytes(got) == data
    # Four fragments per stripe: the first half of a degraded stripe reads it whole,
    # keeping the rest aside, rather than read fragments 0 and 1 now and again later.
    assert sum(asked.values()) == 3 * 4
