"""Reads that land fragments straight in the caller's buffer, and everything they fall back on.

A reader's ``readinto`` with a buffer covering whole data fragments reads them from
their backends into the buffer (``_Window.fetch_into``); anything else, or anything
wrong with such a fragment, is served from its stripe as rebuilt by ``fetch_stripe``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from storager import ServiceInternalError
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Stripes

from .conftest import Rig

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
