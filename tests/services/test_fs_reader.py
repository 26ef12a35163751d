"""fs: open_reader's whole-object reader, and a directory refused without a leaked descriptor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storager import ObjectModeInvalidError
from storager.services.fs import FsStorage


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd (Linux)")
@pytest.mark.parametrize(
    "window", [{}, {"offset": 1}, {"size": 3}], ids=["whole", "offset", "size"]
)
def test_open_reader_of_a_directory_is_refused_and_leaks_no_descriptor(
    tmp_path: Path, window: dict[str, int]
) -> None:
    store = FsStorage(root=str(tmp_path))
    store.create_dir("made")
    (tmp_path / "plain").mkdir()
    try:
        before = _open_descriptors()
        for _ in range(20):
            for path in ("made", "plain"):
                with pytest.raises(ObjectModeInvalidError) as caught:
                    store.open_reader(path, **window)  # type: ignore[arg-type]
                assert caught.value.op == "open_reader"
                assert caught.value.path.rstrip("/").endswith(path)
        # One leaked per refusal would be 40; other threads may hold a few meanwhile.
        assert _open_descriptors() - before < 20
    finally:
        store.close()


def test_the_whole_object_reader_reads_reads_into_and_seeks(tmp_path: Path) -> None:
    content = os.urandom(300_000)
    store = FsStorage(root=str(tmp_path))
    try:
        store.write("a/b.bin", content)
        with store.open_reader("a/b.bin") as reader:
            assert reader.read(10) == content[:10]
            buffer = bytearray(200_000)
            assert reader.readinto(buffer) == 200_000  # type: ignore[attr-defined]
            assert bytes(buffer) == content[10:200_010]
            assert reader.read() == content[200_010:]
            reader.seek(5)
            assert reader.read(5) == content[5:10]
    finally:
        store.close()
