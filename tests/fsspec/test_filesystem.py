"""StoragerFileSystem over memory and fs: listing, info, ranges, writes, files, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import storager
from storager import AlreadyExistsError, NotFoundError
from storager.combinators import Cached
from storager.fsspec import StoragerFileSystem


def test_ls_entries_carry_name_size_and_type(fs: StoragerFileSystem) -> None:
    fs.pipe_file("d/a.txt", b"abc")
    fs.pipe_file("d/sub/b.txt", b"x")
    entries = fs.ls("d")
    assert [(e["name"], e["size"], e["type"]) for e in entries] == [
        ("d/a.txt", 3, "file"),
        ("d/sub", 0, "directory"),
    ]
    assert fs.ls("d", detail=False) == ["d/a.txt", "d/sub"]
    assert fs.ls("", detail=False) == ["d"]


def test_ls_of_a_file_lists_the_file(fs: StoragerFileSystem) -> None:
    fs.pipe_file("f.txt", b"12")
    assert fs.ls("f.txt", detail=False) == ["f.txt"]


def test_ls_of_a_missing_path_raises_file_not_found(fs: StoragerFileSystem) -> None:
    with pytest.raises(FileNotFoundError):
        fs.ls("missing")


def test_info_of_file_directory_and_missing(fs: StoragerFileSystem) -> None:
    fs.pipe_file("d/a.txt", b"abcd")
    info = fs.info("d/a.txt")
    assert (info["name"], info["size"], info["type"]) == ("d/a.txt", 4, "file")
    info = fs.info("d")
    assert (info["name"], info["size"], info["type"]) == ("d", 0, "directory")
    assert fs.isdir("d") and not fs.isfile("d") and fs.isfile("d/a.txt")
    with pytest.raises(NotFoundError):
        fs.info("d/none")
    assert not fs.exists("d/none")


def test_paths_accept_urls_and_slashes(fs: StoragerFileSystem) -> None:
    fs.pipe_file("/d/a.txt/", b"abc")
    assert fs.cat_file("d/a.txt") == b"abc"
    assert fs.cat_file("storager+memory://d/a.txt") == b"abc"


def test_cat_file_ranges_match_python_slices(fs: StoragerFileSystem) -> None:
    data = bytes(range(200))
    fs.pipe_file("r.bin", data)
    for start, end in [
        (None, None),
        (10, 20),
        (10, None),
        (-5, None),
        (-50, -10),
        (190, 500),
        (30, 10),
    ]:
        want = data[slice(start, end)]
        assert fs.cat_file("r.bin", start=start, end=end) == want, (start, end)


def test_cat_file_of_a_missing_file_raises_even_for_an_empty_range(fs: StoragerFileSystem) -> None:
    with pytest.raises(FileNotFoundError):
        fs.cat_file("none.bin", 5, 5)
    with pytest.raises(FileNotFoundError):
        fs.cat_file("none.bin")


def test_cat_ranges_returns_each_range_and_errors_in_place(fs: StoragerFileSystem) -> None:
    data = bytes(range(256)) * 4
    fs.pipe_file("r.bin", data)
    paths = ["r.bin", "r.bin", "r.bin", "none", "r.bin"]
    starts = [0, 100, 50, 0, -10]
    ends = [10, 120, 150, 5, None]
    out = fs.cat_ranges(paths, starts, ends)
    assert out[0] == data[0:10] and out[1] == data[100:120] and out[2] == data[50:150]
    assert isinstance(out[3], FileNotFoundError)
    assert out[4] == data[-10:]
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges(paths, starts, ends, on_error="raise")


def test_pipe_file_create_refuses_an_existing_file(fs: StoragerFileSystem) -> None:
    fs.pipe_file("a", b"1", mode="create")
    with pytest.raises(FileExistsError):
        fs.pipe_file("a", b"2", mode="create")
    assert fs.cat_file("a") == b"1"


def test_put_and_get_file_round_trip(fs: StoragerFileSystem, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(b"payload" * 1000)
    fs.put_file(str(local), "up/p.bin")
    assert fs.cat_file("up/p.bin") == local.read_bytes()
    back = tmp_path / "back.bin"
    fs.get_file("up/p.bin", str(back))
    assert back.read_bytes() == local.read_bytes()


def test_get_file_of_a_missing_file_leaves_no_local_file(
    fs: StoragerFileSystem, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        fs.get_file("none", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_cp_file_and_mv_replace_the_destination(fs: StoragerFileSystem) -> None:
    fs.pipe_file("a", b"A")
    fs.pipe_file("b", b"B")
    fs.cp_file("a", "b")
    assert fs.cat_file("b") == b"A"
    fs.pipe_file("a", b"AA")
    fs.mv("a", "c")
    assert fs.cat_file("c") == b"AA" and not fs.exists("a")


class _NoCopy(storager.Storager):
    """A store with the base operations only (not a Copier, not a Direr)."""

    def __init__(self, inner: storager.Storager) -> None:
        self._inner = inner

    def metadata(self) -> storager.StorageMeta:
        return self._inner.metadata()

    def list(self, path: str = "", **pairs: Any) -> Iterator[storager.Object]:
        return self._inner.list(path, **pairs)

    def read(self, path: str, **pairs: Any) -> bytes:
        return self._inner.read(path, **pairs)

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        return self._inner.open_reader(path, **pairs)

    def write(self, path: str, data: storager.WriteData, **pairs: Any) -> storager.Object:
        return self._inner.write(path, data, **pairs)

    def stat(self, path: str, **pairs: Any) -> storager.Object:
        return self._inner.stat(path, **pairs)

    def delete(self, path: str, **pairs: Any) -> None:
        self._inner.delete(path, **pairs)

    def close(self) -> None:
        self._inner.close()


def test_cp_file_without_a_copier_streams_the_bytes() -> None:
    with storager.open("memory://") as inner:
        fs = StoragerFileSystem(_NoCopy(inner))
        fs.pipe_file("a", b"x" * 100)
        fs.cp_file("a", "b")
        assert inner.read("b") == b"x" * 100


def test_mkdir_without_a_direr_is_implied_by_files() -> None:
    with storager.open("memory://") as inner:
        fs = StoragerFileSystem(_NoCopy(inner))
        fs.mkdir("d")
        assert list(inner.list("")) == []
        fs.pipe_file("d/f", b"1")
        assert fs.isdir("d")


def test_rm_recursive_removes_files_and_directories(fs: StoragerFileSystem) -> None:
    fs.pipe_file("t/a", b"1")
    fs.pipe_file("t/s/b", b"2")
    fs.mkdir("t/empty")
    fs.pipe_file("keep", b"3")
    fs.rm("t", recursive=True)
    assert not fs.exists("t")
    assert fs.find("", withdirs=True) == ["keep"]


def test_rm_of_a_missing_path_raises_file_not_found(fs: StoragerFileSystem) -> None:
    with pytest.raises(FileNotFoundError):
        fs.rm("none", recursive=True)
    with pytest.raises(FileNotFoundError):
        fs.rm("none")


def test_rm_file_is_idempotent(fs: StoragerFileSystem) -> None:
    fs.pipe_file("a", b"1")
    fs.rm_file("a")
    fs.rm_file("a")
    assert not fs.exists("a")


def test_mkdir_makes_an_empty_directory_and_makedirs_checks_existing(
    fs: StoragerFileSystem,
) -> None:
    fs.makedirs("m/n")
    assert fs.isdir("m/n") and fs.ls("m/n") == []
    with pytest.raises(FileExistsError):
        fs.makedirs("m/n")
    fs.makedirs("m/n", exist_ok=True)


def test_find_lists_every_file_below_and_dirs_when_asked(fs: StoragerFileSystem) -> None:
    for name in ["x/1", "x/y/2", "x/y/z/3", "w"]:
        fs.pipe_file(name, b".")
    assert fs.find("x") == ["x/1", "x/y/2", "x/y/z/3"]
    assert fs.find("x", withdirs=True) == ["x", "x/1", "x/y", "x/y/2", "x/y/z", "x/y/z/3"]
    assert fs.find("x", maxdepth=1) == ["x/1"]
    assert fs.find("w") == ["w"]
    assert fs.find("none") == []
    assert fs.glob("x/**/2") == ["x/y/2"]


def test_open_rb_reads_seeks_and_readinto(fs: StoragerFileSystem) -> None:
    data = bytes(range(256)) * 100
    fs.pipe_file("f.bin", data)
    with fs.open("f.bin", "rb", block_size=1000) as f:
        assert f.size == len(data)
        assert f.read(10) == data[:10]
        f.seek(-20, 2)
        assert f.read() == data[-20:]
        f.seek(5000)
        buffer = bytearray(3000)
        assert f.readinto(buffer) == 3000 and bytes(buffer) == data[5000:8000]


def test_open_rb_of_a_missing_file_raises_at_open(fs: StoragerFileSystem) -> None:
    with pytest.raises(FileNotFoundError):
        fs.open("none.bin", "rb")


def test_open_wb_commits_on_close_over_several_blocks(fs: StoragerFileSystem) -> None:
    with fs.open("w.bin", "wb", block_size=1 << 16) as f:
        for i in range(10):
            f.write(bytes([i]) * 50_000)
        assert not fs.exists("w.bin")  # nothing visible before close
    assert fs.cat_file("w.bin") == b"".join(bytes([i]) * 50_000 for i in range(10))


def test_open_wb_discards_on_an_exception(fs: StoragerFileSystem) -> None:
    fs.pipe_file("w.bin", b"old")
    with pytest.raises(RuntimeError), fs.open("w.bin", "wb", block_size=1 << 16) as f:
        f.write(b"n" * 200_000)
        raise RuntimeError("caller failed")
    assert fs.cat_file("w.bin") == b"old"


def test_transaction_publishes_files_at_its_end_and_drops_them_on_error(
    fs: StoragerFileSystem,
) -> None:
    with fs.transaction:
        with fs.open("tx/a.bin", "wb") as f:
            f.write(b"staged")
        assert not fs.exists("tx/a.bin")
    assert fs.cat_file("tx/a.bin") == b"staged"
    with pytest.raises(RuntimeError), fs.transaction:
        with fs.open("tx/b.bin", "wb", block_size=1 << 16) as f:
            f.write(b"b" * 200_000)
        raise RuntimeError("caller failed")
    assert not fs.exists("tx/b.bin")


def test_open_text_mode_round_trips(fs: StoragerFileSystem) -> None:
    with fs.open("t.txt", "w") as f:
        f.write("héllo\nworld\n")
    with fs.open("t.txt", "r") as f:
        assert f.readlines() == ["héllo\n", "world\n"]


def test_open_xb_refuses_an_existing_file_and_ab_appends(fs: StoragerFileSystem) -> None:
    fs.pipe_file("x", b"1")
    with pytest.raises(AlreadyExistsError):
        fs.open("x", "xb")
    with fs.open("x", "ab") as f:
        f.write(b"23")
    assert fs.cat_file("x") == b"123"


def test_modified_and_checksum_follow_the_content(fs: StoragerFileSystem) -> None:
    fs.pipe_file("c", b"1")
    first = fs.checksum("c")
    assert fs.modified("c").tzinfo is not None
    fs.pipe_file("c", b"22")
    assert fs.checksum("c") != first


def test_filesystem_over_a_combinator_tree() -> None:
    with storager.open("memory://") as front, storager.open("memory://") as back:
        fs = StoragerFileSystem(Cached(front, back))
        fs.pipe_file("a/b", b"data")
        assert back.read("a/b") == b"data"
        assert fs.cat_file("a/b", 1, 3) == b"at"
        assert fs.ls("a", detail=False) == ["a/b"]


def test_errors_are_storager_errors_naming_the_path(fs: StoragerFileSystem) -> None:
    with pytest.raises(storager.StorageError) as caught:
        fs.info("nowhere/x")
    assert "nowhere/x" in str(caught.value)


def test_exactly_one_source_is_required() -> None:
    with pytest.raises(ValueError):
        StoragerFileSystem()
    with storager.open("memory://") as store, pytest.raises(ValueError):
        StoragerFileSystem(store, url="memory://")


def test_two_stores_with_equal_reprs_get_two_filesystems() -> None:
    with storager.open("memory://") as one, storager.open("memory://") as two:
        fs1, fs2 = StoragerFileSystem(one), StoragerFileSystem(two)
        assert fs1 is not fs2 and fs2.store is two


class _CountingReads(_NoCopy):
    """Counts reads, to see how many requests a call made."""

    def __init__(self, inner: storager.Storager) -> None:
        super().__init__(inner)
        self.reads: list[dict[str, Any]] = []

    def read(self, path: str, **pairs: Any) -> bytes:
        self.reads.append({"path": path, **pairs})
        return super().read(path, **pairs)


def test_cat_ranges_coalesces_nearby_ranges_into_one_read() -> None:
    with storager.open("memory://") as inner:
        store = _CountingReads(inner)
        fs = StoragerFileSystem(store)
        data = bytes(range(256)) * 64
        fs.pipe_file("f", data)
        fs.pipe_file("g", data)
        starts = [0, 100, 50, 4000, 10]
        ends = [10, 200, 120, 4100, 20]
        out = fs.cat_ranges(["f", "f", "f", "f", "g"], starts, ends, max_gap=1000)
        assert out == [data[s:e] for s, e in zip(starts, ends, strict=True)]
        # f's first three ranges make one read, its far one another; g its own.
        assert sorted((r["path"], r.get("offset"), r.get("size")) for r in store.reads) == [
            ("f", 0, 200),
            ("f", 4000, 100),
            ("g", 10, 10),
        ]
