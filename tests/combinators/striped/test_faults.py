"""Striped under faults: cut writes, failing backends and manifest store, corruption, gc."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from storager import (
    InsufficientStorageError,
    InvalidArgumentError,
    NotFoundError,
    ServiceInternalError,
    Storager,
)
from storager.combinators import Delegate
from storager.combinators.striped import ReedSolomon, Replicas, Striped, Stripes
from storager.testing import Fault

from .conftest import Rig

Make = Callable[..., Rig]
T = TypeVar("T")
KiB = 1024


class _SourceBroke(Exception):
    pass


def _source(data: bytes, fail_after: int) -> Iterator[bytes]:
    for i in range(0, len(data), KiB):
        if i // KiB == fail_after:
            raise _SourceBroke
        yield data[i : i + KiB]


# -- writes cut short or failing: nothing left, the old version whole -----------------------


@pytest.mark.parametrize("fail_after", [0, 1, 5, 11])
def test_cut_source_leaves_no_chunk_and_keeps_old_version(
    rig_factory: Make, fail_after: int
) -> None:
    rig = rig_factory()
    old = os.urandom(10 * KiB)
    rig.store.write("obj", old)
    before = rig.chunks()
    with pytest.raises(_SourceBroke):
        rig.store.write("obj", _source(os.urandom(48 * KiB), fail_after))
    assert rig.chunks() == before  # deleted by the write itself, before gc
    assert rig.store.read("obj") == old


@pytest.mark.parametrize("skip", [0, 3, 7, 9])
def test_backends_failing_after_chunk_i_fail_the_write_and_leave_nothing(
    rig_factory: Make, skip: int
) -> None:
    rig = rig_factory(failures_to_down=1000)
    old = os.urandom(5 * KiB)
    rig.store.write("obj", old)
    before = rig.chunks()
    for backend in list(rig.backends.values())[:3]:  # 3 > parity 2
        backend.fail = {"write": Fault(skip=skip)}
    with pytest.raises((ServiceInternalError, InsufficientStorageError)):
        rig.store.write("obj", os.urandom(40 * KiB))
    rig.heal_backends()
    assert rig.chunks() == before
    assert rig.store.read("obj") == old


def test_manifest_store_failing_before_publish_leaves_nothing(rig_factory: Make) -> None:
    rig = rig_factory()
    rig.store.write("obj", b"old version")
    before = rig.chunks()
    rig.manifests.fail = {"write": 1}
    with pytest.raises(ServiceInternalError):
        rig.store.write("obj", os.urandom(20 * KiB))
    assert rig.chunks() == before
    assert rig.store.read("obj") == b"old version"


def test_fault_after_publish_keeps_the_new_version(rig_factory: Make) -> None:
    """A failure after the manifest landed (the degraded record) does not undo the write."""
    rig = rig_factory()
    rig.store.mark_down("b0")
    rig.manifests.fail = {"write": Fault(skip=1)}  # the manifest lands; the record fails
    data = os.urandom(9 * KiB)
    rig.store.write("obj", data)
    assert rig.store.read("obj") == data
    assert rig.store.stat("obj").system_metadata["degraded"] is True


# -- reads: parity fallback, corruption never returned ----------------------------------------


@pytest.mark.parametrize(
    ("codec", "down"),
    [(ReedSolomon(4, 2), 2), (Replicas(3), 2), (ReedSolomon(2, 1), 1)],
    ids=["rs42", "replicas3", "rs21"],
)
def test_object_readable_with_parity_backends_down(
    rig_factory: Make, codec: object, down: int
) -> None:
    rig = rig_factory(codec)
    data = os.urandom(30 * KiB + 7)
    rig.store.write("obj", data)
    for backend in list(rig.backends.values())[:down]:  # down: every way of reading fails
        backend.fail = {"read": ServiceInternalError, "open_reader": ServiceInternalError}
    assert rig.store.read("obj") == data
    assert rig.store.read("obj", offset=5000, size=9000) == data[5000:14000]
    with rig.store.open_reader("obj") as reader:
        assert reader.read() == data


def test_one_backend_too_many_down_raises_never_wrong_bytes(rig_factory: Make) -> None:
    rig = rig_factory()
    rig.store.write("obj", os.urandom(8 * KiB))
    for backend in list(rig.backends.values())[:3]:
        backend.fail = {"read": ServiceInternalError, "open_reader": ServiceInternalError}
    with pytest.raises(ServiceInternalError, match="needs 4 good fragments"):
        rig.store.read("obj")


def _corrupt(rig: Rig, path: str, stripe: int, fragment: int) -> tuple[str, str]:
    name, key = rig.manifest(path)["stripes"][stripe][2][fragment][:2]
    raw = bytearray(rig.inner[name].read(key))
    raw[len(raw) // 2] ^= 0x01
    rig.inner[name].write(key, bytes(raw))
    return name, key


@pytest.mark.parametrize("codec", [ReedSolomon(4, 2), Replicas(2)], ids=["rs42", "replicas2"])
def test_corrupt_chunk_is_detected_never_returned_and_healed(
    rig_factory: Make, codec: object
) -> None:
    rig = rig_factory(codec)
    data = os.urandom(12 * KiB)
    rig.store.write("obj", data)
    bad = _corrupt(rig, "obj", 1, 0)
    assert rig.store.read("obj") == data
    damaged = rig.store.scrub()
    assert [r.path for r in damaged] == ["obj"]
    assert any("digest mismatch" in line for line in damaged[0].damaged)
    reports = rig.store.heal()  # every object recorded degraded: the read recorded it
    assert [(r.path, r.rebuilt) for r in reports] == [("obj", 1)]
    assert bad not in rig.referenced()
    assert rig.store.scrub() == []
    assert rig.store.read("obj") == data
    assert rig.store.gc(grace=0).deleted == 1  # the corrupt chunk, now unreferenced
    assert rig.chunks() == rig.referenced()


def test_too_much_corruption_raises(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(2, 1), n=3)
    rig.store.write("obj", os.urandom(4 * KiB))
    _corrupt(rig, "obj", 0, 0)
    _corrupt(rig, "obj", 0, 2)
    with pytest.raises(ServiceInternalError, match="digest mismatch"):
        rig.store.read("obj")
    report = rig.store.heal("obj")[0]
    assert report.lost == 1 and not report.healthy


def test_missing_chunk_is_rebuilt_by_heal(rig_factory: Make) -> None:
    rig = rig_factory()
    data = os.urandom(10 * KiB)
    rig.store.write("obj", data)
    name, key = rig.manifest("obj")["stripes"][0][2][4][:2]
    rig.inner[name].delete(key)
    report = rig.store.heal("obj")[0]
    assert report.rebuilt == 1 and report.healthy
    assert rig.store.scrub() == []
    assert rig.store.read("obj") == data


# -- health: down, around, back; degraded writes healed -------------------------------------


def test_failing_backend_goes_down_writes_go_around_and_heal_completes(rig_factory: Make) -> None:
    now = [0.0]
    rig = rig_factory(
        ReedSolomon(4, 2), n=6, failures_to_down=2, cooldown=10.0, clock=lambda: now[0]
    )
    rig.backends["b0"].fail = {"*": ServiceInternalError}
    data = os.urandom(20 * KiB)
    rig.store.write("obj", data)  # b0 fails, goes down; stripes land on 5 backends
    health = rig.store.health()
    assert not health["b0"].up and "ServiceInternalError" in (health["b0"].last_error or "")
    assert not any(name == "b0" for name, _ in rig.chunks())
    assert rig.store.stat("obj").system_metadata["degraded"] is True
    assert rig.store.read("obj") == data
    now[0] = 11.0  # cooldown over, but still failing: the probe keeps it down
    rig.store.write("other", data)
    assert not rig.store.health()["b0"].up
    assert not any(name == "b0" for name, _ in rig.chunks())
    rig.backends["b0"].heal()
    now[0] = 30.0
    reports = rig.store.heal()  # the probe brings b0 back; fragments rebuilt
    assert sorted(r.path for r in reports) == ["obj", "other"]
    assert all(r.healthy and r.rebuilt for r in reports)
    assert rig.store.health()["b0"].up
    assert rig.store.stat("obj").system_metadata["degraded"] is False
    assert rig.store.read("obj") == data


def test_write_fails_fast_when_too_few_backends_are_up(rig_factory: Make) -> None:
    rig = rig_factory(ReedSolomon(4, 2))
    for name in ("b0", "b1"):
        rig.store.mark_down(name, "maintenance")
    with pytest.raises(InsufficientStorageError) as info:
        rig.store.write("obj", os.urandom(5 * KiB))
    message = str(info.value)
    assert "b0: down" in message and "maintenance" in message and "b2: up" in message
    assert isinstance(info.value, OSError)
    assert rig.chunks() == set()
    with pytest.raises(NotFoundError):
        rig.store.stat("obj")


def test_quota_exceeded_raises_insufficient_storage_and_leaves_nothing(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(2), n=3, quotas={"b0": 4 * KiB, "b1": 4 * KiB, "b2": 4 * KiB})
    rig.store.write("small", os.urandom(5 * KiB))  # 10 KiB of 12 KiB quota
    with pytest.raises(InsufficientStorageError, match="quota 4096"):
        rig.store.write("big", os.urandom(8 * KiB))
    assert rig.chunks() == rig.referenced()
    used = {name: h.bytes_used for name, h in rig.store.health().items()}
    assert sum(used.values()) == 10 * KiB


# -- gc ------------------------------------------------------------------------------------


def test_gc_leaves_exactly_the_referenced_chunks(rig_factory: Make) -> None:
    rig = rig_factory(Stripes(3), n=3)
    for i in range(4):
        rig.store.write(f"o{i}", os.urandom(3 * KiB))
    rig.store.write("o0", os.urandom(2 * KiB))  # replaced: old chunks unreferenced
    rig.store.delete("o1")
    rig.backends["b2"].fail = {"write": Fault(skip=2)}
    with pytest.raises(ServiceInternalError):
        rig.store.write("o2", os.urandom(9 * KiB))
    rig.heal_backends()
    assert rig.chunks() > rig.referenced()
    assert rig.store.gc(grace=3600).deleted == 0  # young: kept for readers and writers
    report = rig.store.gc(grace=0)
    assert report.deleted > 0 and report.skipped == ()
    assert rig.chunks() == rig.referenced()


def test_gc_skips_a_backend_it_cannot_list(rig_factory: Make) -> None:
    rig = rig_factory(Replicas(2), n=2)
    rig.store.write("a", b"x" * 3000)
    rig.store.delete("a")
    rig.backends["b1"].fail = {"list": ServiceInternalError}
    report = rig.store.gc(grace=0)
    assert report.skipped == ("b1",)
    assert {name for name, _ in rig.chunks()} == {"b1"}


def test_heal_never_publishes_over_another_process_write(rig_factory: Make) -> None:
    """Two stores over one manifest store: a write landing during a heal wins."""
    rig = rig_factory()
    other = Striped(rig.backends, codec=ReedSolomon(4, 2), manifests=rig.manifests, chunk_size=1024)
    newer = os.urandom(3 * KiB)

    class Racing(Delegate):
        """The heal's manifest store: just before its publish, the other store writes."""

        armed = False

        def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
            if op == "write" and path == "obj" and self.armed:
                self.armed = False
                other.write("obj", newer)
            return super()._around(op, path, fn)

    racing = Racing(rig.manifests)
    healer = Striped(rig.backends, codec=ReedSolomon(4, 2), manifests=racing, chunk_size=1024)
    rig.store.write("obj", os.urandom(6 * KiB))
    _corrupt(rig, "obj", 0, 1)
    racing.armed = True
    report = healer.heal("obj")[0]
    assert not racing.armed and report.note.startswith("replaced") and report.rebuilt == 0
    assert rig.store.read("obj") == newer
    rig.store.gc(grace=0)
    assert rig.chunks() == rig.referenced()


def test_heal_keeps_fragments_on_distinct_backends_when_one_is_unreachable(
    rig_factory: Make,
) -> None:
    rig = rig_factory(ReedSolomon(2, 2), n=5, failures_to_down=1000, placement="round_robin")
    rig.store.write("obj", os.urandom(1500))  # one stripe of four fragments
    fragments = rig.manifest("obj")["stripes"][0][2]
    _corrupt(rig, "obj", 0, 3)
    unreachable = fragments[1][0]
    rig.backends[unreachable].fail = {"read": ServiceInternalError}
    report = rig.store.heal("obj")[0]
    assert report.rebuilt == 1
    assert any("unreachable" in line for line in report.damaged)
    healed = [f[0] for f in rig.manifest("obj")["stripes"][0][2]]
    assert len(set(healed)) == 4 and healed[1] == unreachable


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("sha256", lambda data: hashlib.sha256(data).hexdigest()),
        ("crc32", lambda data: f"{zlib.crc32(data):08x}"),
    ],
)
def test_other_fragment_digests_are_recorded_checked_and_healed(
    rig_factory: Make, algorithm: str, digest: Callable[[bytes], str]
) -> None:
    rig = rig_factory(fragment_digest=algorithm)
    data = os.urandom(12 * KiB)
    rig.store.write("obj", data)
    for _, _, fragments in rig.manifest("obj")["stripes"]:
        for name, key, _, recorded in fragments:
            assert recorded == f"{algorithm}:" + digest(rig.inner[name].read(key))
    _corrupt(rig, "obj", 1, 0)
    assert rig.store.read("obj") == data
    assert [(r.path, r.rebuilt) for r in rig.store.heal()] == [("obj", 1)]
    assert rig.store.scrub() == []


def test_manifest_with_bare_sha256_digests_still_reads_and_detects_corruption(
    rig_factory: Make,
) -> None:
    """Manifests written before digests named their algorithm: a bare hex is sha256."""
    rig = rig_factory(fragment_digest="sha256")
    data = os.urandom(12 * KiB)
    rig.store.write("obj", data)
    doc = rig.manifest("obj")
    for _, _, fragments in doc["stripes"]:
        for fragment in fragments:
            fragment[3] = fragment[3].removeprefix("sha256:")
    rig.manifests.inner.write("obj", json.dumps(doc).encode())
    assert rig.store.read("obj") == data
    _corrupt(rig, "obj", 2, 1)
    assert rig.store.read("obj") == data
    damaged = rig.store.scrub()
    assert any("digest mismatch" in line for line in damaged[0].damaged)


def test_unknown_fragment_digest_is_refused(rig_factory: Make) -> None:
    expected = "fragment_digest must be one of xxh3, crc32, sha256"
    with pytest.raises(InvalidArgumentError, match=expected):
        rig_factory(fragment_digest="md5")


def test_a_digest_that_fails_fails_the_write_of_every_replica_sharing_its_buffer(
    rig_factory: Callable[..., Rig],
) -> None:
    # Replicas share one buffer, digested once by whichever put comes first; the others
    # wait on that one result, which must be settled even when the digest raises.
    rig = rig_factory(Replicas(3), n=3)
    core = rig.store._core
    real = core.digest

    class Broken:
        name = real.name

        def of(self, data: object) -> str:
            raise RuntimeError("digest broke")

    core.digest = Broken()  # type: ignore[assignment]
    outcome: list[BaseException] = []

    def write() -> None:
        try:
            rig.store.write("r.bin", b"x" * 100)
        except BaseException as exc:  # the test reports whatever came out
            outcome.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(20)
    assert not writer.is_alive(), "a put waited forever on a digest that had failed"
    assert outcome and not isinstance(outcome[0], AssertionError)
    core.digest = real
    with pytest.raises(NotFoundError):
        rig.store.stat("r.bin")
