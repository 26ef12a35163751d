"""Property tests (bounded): whole versions only, under races and faults; gc leaks nothing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storager import ServiceInternalError, StorageError
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Stripes
from storager.testing import Fault

from .conftest import Rig

Make = Callable[..., Rig]
CODECS: list[Callable[[], Codec]] = [
    lambda: ReedSolomon(4, 2),
    lambda: ReedSolomon(2, 1),
    lambda: Replicas(3),
    lambda: Stripes(3),
]
SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class _Cut(Exception):
    pass


def _chunks(data: bytes, cut: int | None) -> Iterator[bytes]:
    for i in range(0, len(data), 700):
        if cut is not None and i // 700 >= cut:
            raise _Cut
        yield data[i : i + 700]


@SETTINGS
@given(
    codec=st.sampled_from(CODECS),
    sizes=st.lists(st.integers(0, 9000), min_size=2, max_size=4),
    faulty=st.sets(st.integers(0, 5), max_size=2),
    skip=st.integers(0, 6),
    cuts=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=4, max_size=4),
)
def test_readers_racing_writers_see_only_whole_versions(
    rig_factory: Make,
    codec: Callable[[], Codec],
    sizes: list[int],
    faulty: set[int],
    skip: int,
    cuts: list[int | None],
) -> None:
    rig = rig_factory(codec(), failures_to_down=1000)
    initial = b"initial" * 300
    rig.store.write("key", initial)
    versions = [bytes([65 + i]) * size for i, size in enumerate(sizes)]
    names = list(rig.backends)
    for index in faulty:
        name = names[index % len(names)]
        rig.backends[name].fail = {
            "write": Fault(skip=skip, times=3),
            "read": Fault(skip=skip, times=5),
            "open_reader": Fault(skip=skip, times=5),
        }
    seen: list[bytes] = []
    stop = threading.Event()

    def write(i: int) -> None:
        with contextlib.suppress(StorageError, _Cut):  # a failed write is allowed
            rig.store.write("key", _chunks(versions[i], cuts[i]))

    def read() -> None:
        while not stop.is_set():
            with contextlib.suppress(StorageError):  # an error is allowed; wrong bytes are not
                seen.append(rig.store.read("key"))

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(i,)) for i in range(len(versions))]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    allowed = {initial, *versions}
    assert all(content in allowed for content in seen)
    rig.heal_backends()
    assert rig.store.read("key") in allowed


@SETTINGS
@given(
    codec=st.sampled_from(CODECS),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["write", "cut", "delete", "copy", "multipart", "abort", "fault"]),
            st.integers(0, 3),
            st.integers(0, 6000),
        ),
        min_size=3,
        max_size=10,
    ),
)
def test_gc_after_random_faults_leaves_exactly_the_referenced_chunks(
    rig_factory: Make, codec: Callable[[], Codec], steps: list[tuple[str, int, int]]
) -> None:
    rig = rig_factory(codec(), failures_to_down=1000)
    store = rig.store
    expected: dict[str, bytes] = {}
    names = list(rig.backends)
    for step, (action, which, size) in enumerate(steps):
        path = f"o{which}"
        data = bytes([step % 251]) * size
        try:
            if action == "write":
                store.write(path, data)
                expected[path] = data
            elif action == "cut":
                store.write(path, _chunks(data, size % 4))
                expected[path] = data  # the source ended before the cut
            elif action == "delete":
                store.delete(path)
                expected.pop(path, None)
            elif action == "copy":
                store.copy(path, f"o{(which + 1) % 4}")
                expected[f"o{(which + 1) % 4}"] = expected[path]
            elif action in ("multipart", "abort"):
                mp = store.create_multipart(path)
                parts = [store.write_multipart(mp, n, data) for n in (2, 1)]
                if action == "abort":
                    store.abort_multipart(mp)
                else:
                    store.complete_multipart(mp, sorted(parts, key=lambda p: p.number))
                    expected[path] = data + data
            else:
                rig.backends[names[which % len(names)]].fail = {
                    "write": Fault(skip=size % 5, times=4)
                }
                rig.manifests.fail = {"write": Fault(skip=size % 3, times=1)}
        except (StorageError, _Cut):
            pass  # a failed change leaves the previous version (checked below)
    rig.heal_backends()
    # A change that raised changed nothing: each object holds its last acknowledged version.
    assert {o.path for o in store.list("", list_mode="prefix")} == set(expected)
    store.gc(grace=0)
    assert rig.chunks() == rig.referenced()
    for path, content in expected.items():
        assert store.read(path) == content  # every object still whole after gc


@SETTINGS
@given(
    codec=st.sampled_from(CODECS[:3]),
    size=st.integers(1, 20_000),
    down=st.data(),
)
def test_parity_backends_failing_leave_every_object_readable(
    rig_factory: Make, codec: Callable[[], Codec], size: int, down: st.DataObject
) -> None:
    rig = rig_factory(codec())
    objects = {f"o{i}": bytes([i + 1]) * (size + i) for i in range(3)}
    for path, data in objects.items():
        rig.store.write(path, data)
    parity = rig.store.codec.parity
    failing = down.draw(st.sets(st.sampled_from(sorted(rig.backends)), max_size=parity))
    for name in failing:
        rig.backends[name].fail = {"*": ServiceInternalError}
    for path, data in objects.items():
        assert rig.store.read(path) == data
        assert (
            rig.store.read(path, offset=size // 3, size=size // 2) == data[size // 3 :][: size // 2]
        )


@SETTINGS
@given(
    codec=st.sampled_from(CODECS[:3]),
    size=st.integers(1, 20_000),
    damage=st.data(),
)
def test_corruption_up_to_parity_is_never_returned_and_healed(
    rig_factory: Make, codec: Callable[[], Codec], size: int, damage: st.DataObject
) -> None:
    rig = rig_factory(codec())
    data = bytes(range(256)) * (size // 256) + b"t" * (size % 256)
    rig.store.write("obj", data)
    manifest = rig.manifest("obj")
    parity = rig.store.codec.parity
    for _, _, fragments in manifest["stripes"]:
        for index in damage.draw(st.sets(st.integers(0, len(fragments) - 1), max_size=parity)):
            name, key = fragments[index][:2]
            raw = bytearray(rig.inner[name].read(key))
            raw[damage.draw(st.integers(0, len(raw) - 1))] ^= 0x80
            rig.inner[name].write(key, bytes(raw))
    assert rig.store.read("obj") == data
    rig.store.heal("obj")
    assert rig.store.scrub() == []
    assert rig.store.read("obj") == data
