"""Mirror as a Segmenter and a Linker: every target gets the change, or none keeps it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storager import (
    InvalidArgumentError,
    Linker,
    NotFoundError,
    Presigner,
    Segmenter,
    ServiceInternalError,
)
from storager.combinators import Mirror, MirrorError
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing.faulty import FaultyStorager


def _once(chunks: list[bytes]) -> Iterator[bytes]:
    """A stream that can be read once only, as a socket would be."""
    yield from chunks


def test_mirror_has_segmenter_and_linker_only_when_every_target_does(
    mem: MemoryStorage, fs: FsStorage
) -> None:
    both = Mirror({"a": mem, "b": MemoryStorage()})
    assert isinstance(both, Segmenter) and isinstance(both, Linker)
    assert not isinstance(both, Presigner) and not hasattr(both, "presign_read")
    assert "complete_multipart" in both.metadata().capability.operations
    mixed = Mirror({"m": MemoryStorage(), "f": fs})
    assert not isinstance(mixed, Segmenter) and not hasattr(mixed, "create_multipart")
    assert not isinstance(mixed, Linker)
    both.close()
    mixed.close()


@pytest.mark.parametrize("write", ["sequential", "parallel"])
def test_mirror_multipart_lands_whole_on_every_target(write: str) -> None:
    a, b = MemoryStorage(), MemoryStorage()
    mirror = Mirror({"a": a, "b": b}, write=write)
    mp = mirror.create_multipart("big.bin")
    p2 = mirror.write_multipart(mp, 2, _once([b"b" * 1000, b"B" * 24]))
    p1 = mirror.write_multipart(mp, 1, b"a" * 500)
    assert (p1.size, p2.size) == (500, 1024)
    assert [p.number for p in mirror.list_multipart(mp)] == [1, 2]
    with pytest.raises(NotFoundError):
        a.stat("big.bin")
    # The upload id carries every target's upload: another Mirror over them completes it.
    again = Mirror({"a": a, "b": b})
    obj = again.complete_multipart(mp, [p1, p2])
    assert obj.content_length == 1524
    expected = b"a" * 500 + b"b" * 1000 + b"B" * 24
    assert a.read("big.bin") == b.read("big.bin") == expected
    mirror.close()


def test_mirror_multipart_unknown_upload_raises_not_found(mem: MemoryStorage) -> None:
    mirror = Mirror({"a": mem, "b": MemoryStorage()})
    real = mirror.create_multipart("x.bin")
    for upload_id in ["no-such-upload", "mirror-!!!", real.upload_id[:-4]]:
        with pytest.raises(NotFoundError):
            mirror.write_multipart(type(real)(real.path, upload_id), 1, b"x")
    with pytest.raises(InvalidArgumentError):
        mirror.write_multipart(real, 1, b"x", targets=["a"])
    mirror.abort_multipart(real)
    with pytest.raises(NotFoundError):
        list(mem.list_multipart(type(real)(real.path, _inner_id(mirror, real, "a"))))


def _inner_id(mirror: Mirror, mp: object, name: str) -> str:
    ups = mirror._uploads("test", mp)  # type: ignore[attr-defined]
    return str(ups[name].upload_id)


def test_mirror_complete_failing_on_one_target_restores_the_others() -> None:
    a, b_inner = MemoryStorage(), MemoryStorage()
    a.write("obj.bin", b"previous")
    b = FaultyStorager(b_inner, fail={"complete_multipart": 1})
    mirror = Mirror({"a": a, "b": b})  # sequential: a completes, then b fails
    mp = mirror.create_multipart("obj.bin")
    part = mirror.write_multipart(mp, 1, b"new content")
    with pytest.raises(MirrorError) as info:
        mirror.complete_multipart(mp, [part])
    assert isinstance(info.value, ServiceInternalError)
    assert info.value.outcomes["a"] == "ok (rolled back)"
    assert a.read("obj.bin") == b"previous"
    with pytest.raises(NotFoundError):
        b_inner.stat("obj.bin")
    # The upload is over on every target: b's was aborted, a's was completed.
    with pytest.raises(NotFoundError):
        list(b_inner.list_multipart(type(mp)(mp.path, _inner_id(mirror, mp, "b"))))
    mirror.close()


def test_mirror_complete_failing_everywhere_keeps_the_upload_for_a_retry() -> None:
    a = FaultyStorager(MemoryStorage(), fail={"complete_multipart": 1})
    b = MemoryStorage()
    mirror = Mirror({"a": a, "b": b})
    mp = mirror.create_multipart("obj.bin")
    part = mirror.write_multipart(mp, 1, b"content")
    with pytest.raises(MirrorError) as info:
        mirror.complete_multipart(mp, [part])
    assert info.value.outcomes["b"] == "not attempted"
    mirror.complete_multipart(mp, [part])
    assert a.read("obj.bin") == b.read("obj.bin") == b"content"


def test_mirror_create_multipart_failure_aborts_the_uploads_already_made() -> None:
    a = FaultyStorager(MemoryStorage())
    b = FaultyStorager(MemoryStorage(), fail={"create_multipart": ServiceInternalError})
    mirror = Mirror({"a": a, "b": b}, write="parallel")
    with pytest.raises(MirrorError) as info:
        mirror.create_multipart("x.bin")
    assert info.value.outcomes["a"] == "ok"
    assert a.calls["abort_multipart"] == 1
    mirror.close()


def test_mirror_streamed_part_failing_on_one_target_raises_and_can_be_written_again() -> None:
    a, b_inner = MemoryStorage(), MemoryStorage()
    b = FaultyStorager(b_inner, fail={"write_multipart": 1})
    mirror = Mirror({"a": a, "b": b}, write="parallel")
    mp = mirror.create_multipart("x.bin")
    with pytest.raises(MirrorError):
        mirror.write_multipart(mp, 1, _once([b"x" * 100] * 10))
    part = mirror.write_multipart(mp, 1, _once([b"y" * 100] * 10))
    mirror.complete_multipart(mp, [part])
    assert a.read("x.bin") == b_inner.read("x.bin") == b"y" * 1000


def test_mirror_create_link_failing_on_one_target_puts_the_path_back() -> None:
    a, b_inner = MemoryStorage(), MemoryStorage()
    for store in (a, b_inner):
        store.write("target.txt", b"target")
        store.write("link.txt", b"a plain object")
    b = FaultyStorager(b_inner, fail={"create_link": 1})
    mirror = Mirror({"a": a, "b": b})
    with pytest.raises(MirrorError):
        mirror.create_link("link.txt", "target.txt")
    assert a.read("link.txt") == b_inner.read("link.txt") == b"a plain object"
    mirror.create_link("link.txt", "target.txt")
    assert a.read("link.txt") == b_inner.read("link.txt") == b"target"
    assert a.stat("link.txt").link_target == "target.txt"
