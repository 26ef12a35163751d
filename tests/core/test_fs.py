"""fs behaviours: atomic replace, no visible temp files, sync, safe failed appends."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storager import InvalidArgumentError, PathInvalidError
from storager.services.fs import TEMP_PREFIX, FsStorage


@pytest.fixture
def fs(tmp_path: Path) -> FsStorage:
    return FsStorage(root=str(tmp_path))


def temp_files(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_a_write_with_a_wrong_size_keeps_the_old_content_and_leaves_no_temp_file(
    fs: FsStorage, tmp_path: Path
) -> None:
    fs.write("dir/a.txt", b"old content")
    with pytest.raises(InvalidArgumentError, match="not size=4"):
        fs.write("dir/a.txt", b"new", size=3 + 1)
    with pytest.raises(InvalidArgumentError, match="longer than size=2"):
        fs.write("dir/a.txt", b"new data", size=2)
    assert fs.read("dir/a.txt") == b"old content"
    assert temp_files(tmp_path) == []


def test_a_write_whose_source_fails_midway_keeps_the_old_content(
    fs: FsStorage, tmp_path: Path
) -> None:
    fs.write("a.txt", b"old")

    def broken() -> Iterator[bytes]:
        yield b"partial "
        raise RuntimeError("source broke")

    # The caller's own exception comes back unchanged.
    with pytest.raises(RuntimeError, match="source broke"):
        fs.write("a.txt", broken())
    assert fs.read("a.txt") == b"old"
    assert temp_files(tmp_path) == []


def test_temp_files_never_show_in_listings(fs: FsStorage, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / f"{TEMP_PREFIX}leftover-1").write_bytes(b"crash leftover")
    seen: list[list[str]] = []

    def chunks() -> Iterator[bytes]:
        yield b"first half "
        # The temp file exists now: list while the write is in flight.
        seen.append([o.path for o in fs.list("d/")])
        seen.append([o.path for o in fs.list("", list_mode="prefix")])
        yield b"second half"

    fs.write("d/new.txt", chunks())
    assert seen == [[], []]
    assert [o.path for o in fs.list("d/")] == ["d/new.txt"]
    assert [o.path for o in fs.list("", list_mode="prefix")] == ["d/new.txt"]


def test_names_starting_with_the_temp_prefix_are_reserved(fs: FsStorage) -> None:
    with pytest.raises(PathInvalidError, match="reserved"):
        fs.write(f"{TEMP_PREFIX}x", b"x")
    for call in (
        lambda: fs.read(f"d/{TEMP_PREFIX}x"),
        lambda: fs.stat(f"d/{TEMP_PREFIX}x"),
        lambda: fs.delete(f"d/{TEMP_PREFIX}x"),
        lambda: fs.create_dir(f"d/{TEMP_PREFIX}x/"),
        lambda: fs.append(f"{TEMP_PREFIX}x", b"x"),
    ):
        with pytest.raises(PathInvalidError, match="reserved"):
            call()


def test_sync_writes_appends_copies_and_moves_are_durable_and_correct(
    fs: FsStorage, tmp_path: Path
) -> None:
    assert fs.write("s/a.txt", b"synced", sync=True).content_length == 6
    assert fs.append("s/a.txt", b"+more", sync=True).content_length == 11
    fs.copy("s/a.txt", "s/b.txt", sync=True)
    fs.move("s/b.txt", "t/c.txt", sync=True)
    assert (tmp_path / "s" / "a.txt").read_bytes() == b"synced+more"
    assert (tmp_path / "t" / "c.txt").read_bytes() == b"synced+more"
    assert not (tmp_path / "s" / "b.txt").exists()
    store = FsStorage(root=str(tmp_path), default_sync=True)
    assert store.write("d.txt", b"default sync").content_length == 12


def test_an_atomic_replace_never_shows_a_reader_half_a_version(fs: FsStorage) -> None:
    size = 1 << 20
    versions = [bytes([v]) * size for v in (0x41, 0x42, 0x43)]
    fs.write("big.bin", versions[0])
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = fs.read("big.bin")
            reads += 1
            if len(data) != size or data.count(data[:1]) != size:
                problems.append(f"read {len(data)} bytes, mixed={data.count(data[:1]) != size}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            fs.write("big.bin", versions[i % 3])
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert reads > 0


def test_an_append_with_a_wrong_size_leaves_the_file_as_before(
    fs: FsStorage, tmp_path: Path
) -> None:
    fs.append("log.txt", b"line one\n")
    with pytest.raises(InvalidArgumentError):
        fs.append("log.txt", b"line two\n", size=4)
    with pytest.raises(InvalidArgumentError):
        fs.append("log.txt", b"short", size=100)
    assert fs.read("log.txt") == b"line one\n"
    assert os.path.getsize(tmp_path / "log.txt") == 9
    assert fs.append("log.txt", b"line two\n", size=9).content_length == 18
