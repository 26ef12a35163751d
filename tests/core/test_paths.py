"""Path rules: resolution inside the store, and no way out of an fs root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storager import PathInvalidError, StorageError
from storager._paths import join_dir, normalize_work_dir, relative_to, resolve
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

# -- resolution --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("work_dir", "path", "expected"),
    [
        ("/", "a.txt", "/a.txt"),
        ("/w/", "a.txt", "/w/a.txt"),
        ("/w/", "d/", "/w/d/"),
        ("/w/", "a\\b\\c.txt", "/w/a/b/c.txt"),
        ("/w/", "./a/./b.txt", "/w/a/b.txt"),
        ("/w/", "a//b.txt", "/w/a/b.txt"),
        ("/w/", "a/../b.txt", "/w/b.txt"),
        ("/w/", "../sibling.txt", "/sibling.txt"),
        ("/w/", "/abs/x.txt", "/abs/x.txt"),
        ("/w/", "\\abs\\x.txt", "/abs/x.txt"),
        ("/w/", "a/.hidden", "/w/a/.hidden"),
        ("/w/", "...", "/w/..."),
    ],
)
def test_resolve_maps_caller_paths_to_store_absolute_paths(
    work_dir: str, path: str, expected: str
) -> None:
    assert resolve("read", "fs", work_dir, path) == expected


@pytest.mark.parametrize("path", ["..", "../..", "a/../../x", "/../x", "..\\x", "/a/../.."])
def test_dotdot_past_the_root_is_refused(path: str) -> None:
    with pytest.raises(PathInvalidError) as info:
        resolve("read", "fs", "/", path)
    assert str(info.value) == f"read fs:{path}: path leads outside the store's root"


def test_dotdot_past_the_root_from_a_work_dir_is_refused() -> None:
    with pytest.raises(PathInvalidError, match="outside the store's root"):
        resolve("write", "memory", "/w/", "../../x")


def test_nul_byte_is_refused_and_shown_escaped() -> None:
    with pytest.raises(PathInvalidError) as info:
        resolve("read", "fs", "/", "a\x00b")
    assert info.value.reason == "NUL byte in path"
    assert "\x00" not in str(info.value)
    assert "a\\0b" in str(info.value)


def test_empty_path_is_refused() -> None:
    with pytest.raises(PathInvalidError, match="empty path"):
        resolve("stat", "fs", "/", "")


@pytest.mark.parametrize("path", ["/", ".", "a/..", "\\"])
def test_a_path_naming_the_root_is_not_an_object(path: str) -> None:
    with pytest.raises(PathInvalidError, match="names the store's root"):
        resolve("read", "fs", "/", path)


@pytest.mark.parametrize("path", [b"a.txt", 5, ["a"]])
def test_a_non_str_path_is_a_path_error_not_a_type_error(path: object) -> None:
    with pytest.raises(PathInvalidError, match="must be a str"):
        resolve("read", "fs", "/", path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("work_dir", "expected"),
    [
        (None, "/"),
        ("", "/"),
        ("/", "/"),
        ("sub", "/sub/"),
        ("/a/b", "/a/b/"),
        ("a\\b\\", "/a/b/"),
        ("/a/./c/../b//", "/a/b/"),
    ],
)
def test_work_dir_is_normalised_to_an_absolute_directory(
    work_dir: str | None, expected: str
) -> None:
    assert normalize_work_dir(work_dir, "fs") == expected


def test_work_dir_climbing_past_the_root_is_refused() -> None:
    with pytest.raises(PathInvalidError, match="outside"):
        normalize_work_dir("../x", "fs")


def test_join_dir_treats_empty_as_the_work_dir() -> None:
    assert join_dir("list", "fs", "/w/", "") == "/w/"
    assert join_dir("list", "fs", "/w/", "sub/") == "/w/sub/"
    assert join_dir("list", "fs", "/w/", "/") == "/"


def test_relative_to_strips_the_work_dir_only_when_inside() -> None:
    assert relative_to("/w/", "/w/a/b.txt") == "a/b.txt"
    assert relative_to("/w/", "/other/b.txt") == "/other/b.txt"


def test_store_operations_refuse_bad_paths_before_touching_anything() -> None:
    store = MemoryStorage(work_dir="/w")
    for bad in ("../../x", "a\x00b", ""):
        with pytest.raises(PathInvalidError):
            store.write(bad, b"x")
    assert list(store.list("/", list_mode="prefix")) == []


def test_store_paths_come_back_relative_to_the_work_dir() -> None:
    store = MemoryStorage(work_dir="/w/")
    assert store.write("a\\b.txt", b"x").path == "a/b.txt"
    assert store.write("/elsewhere.txt", b"y").path == "/elsewhere.txt"
    assert store.read("/w/a/b.txt") == b"x"


# -- fs symlink escapes ----------------------------------------------------------------


@pytest.fixture
def escape(tmp_path: Path) -> tuple[FsStorage, Path]:
    """An fs root holding a file link and a directory link that point outside it."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"SECRET")
    (outside / "dir" / "inner.txt").write_bytes(b"INNER SECRET")
    root.mkdir()
    (root / "inside.txt").write_bytes(b"inside")
    (root / "sub").mkdir()
    (root / "sub" / "s.txt").write_bytes(b"sub file")
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside / "dir", root / "linkdir")
    return FsStorage(root=str(root)), outside


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def assert_refused(call: object, outside: Path, before: dict[str, tuple[bytes, int]]) -> None:
    assert callable(call)
    with pytest.raises(PathInvalidError) as info:
        call()
    text = str(info.value)
    assert "SECRET" not in text
    assert str(outside) not in text  # the link's target is not revealed
    assert snapshot(outside) == before


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("read file link", lambda s: s.read("link.txt")),
        ("read through dir link", lambda s: s.read("linkdir/inner.txt")),
        ("open_reader file link", lambda s: s.open_reader("link.txt")),
        ("open_reader through dir link", lambda s: s.open_reader("linkdir/inner.txt")),
        ("stat file link", lambda s: s.stat("link.txt")),
        ("stat dir link", lambda s: s.stat("linkdir")),
        ("stat dir link as dir", lambda s: s.stat("linkdir/")),
        ("stat through dir link", lambda s: s.stat("linkdir/inner.txt")),
        ("write through dir link", lambda s: s.write("linkdir/new.txt", b"x")),
        ("write over file through dir link", lambda s: s.write("linkdir/inner.txt", b"x")),
        ("list dir link", lambda s: list(s.list("linkdir/"))),
        ("list dir link no slash", lambda s: list(s.list("linkdir"))),
        ("list dir link prefix", lambda s: list(s.list("linkdir/", list_mode="prefix"))),
        ("copy from file link", lambda s: s.copy("link.txt", "stolen.txt")),
        ("copy from dir link", lambda s: s.copy("linkdir/inner.txt", "stolen.txt")),
        ("copy into dir link", lambda s: s.copy("inside.txt", "linkdir/planted.txt")),
        ("move into dir link", lambda s: s.move("inside.txt", "linkdir/planted.txt")),
        ("move out of dir link", lambda s: s.move("linkdir/inner.txt", "taken.txt")),
        ("append to file link", lambda s: s.append("link.txt", b"more")),
        ("append through dir link", lambda s: s.append("linkdir/inner.txt", b"more")),
        ("delete through dir link", lambda s: s.delete("linkdir/inner.txt")),
        ("create_dir through dir link", lambda s: s.create_dir("linkdir/newdir")),
    ],
)
def test_fs_symlinks_leading_outside_the_root_are_refused(
    escape: tuple[FsStorage, Path], name: str, call: object
) -> None:
    store, outside = escape
    before = snapshot(outside)
    assert callable(call)
    assert_refused(lambda: call(store), outside, before)
    assert sorted(p.name for p in outside.rglob("*")) == ["dir", "inner.txt", "secret.txt"]
    assert (store._root + "/inside.txt") and store.read("inside.txt") == b"inside"


def test_fs_listing_the_root_shows_outward_links_as_links_without_descending(
    escape: tuple[FsStorage, Path],
) -> None:
    store, _ = escape
    listed = {o.path: o for o in store.list("", list_mode="prefix")}
    assert "linkdir/inner.txt" not in listed
    assert set(listed) == {"inside.txt", "link.txt", "linkdir", "sub/s.txt"}
    assert all(o.content_length is None for p, o in listed.items() if p.startswith("link"))


def test_fs_symlinks_that_stay_inside_the_root_work(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.txt").write_bytes(b"content")
    os.symlink(root / "real" / "a.txt", root / "alias.txt")
    os.symlink("real", root / "aliasdir")  # relative links too
    store = FsStorage(root=str(root))
    assert store.read("alias.txt") == b"content"
    assert store.stat("alias.txt").content_length == 7
    with store.open_reader("aliasdir/a.txt") as reader:
        assert reader.read() == b"content"
    assert [o.path for o in store.list("aliasdir/")] == ["aliasdir/a.txt"]
    store.write("aliasdir/b.txt", b"new")
    assert (root / "real" / "b.txt").read_bytes() == b"new"
    store.copy("alias.txt", "copied.txt")
    assert (root / "copied.txt").read_bytes() == b"content"


def test_fs_errors_are_storage_errors_naming_op_and_path(escape: tuple[FsStorage, Path]) -> None:
    store, _ = escape
    with pytest.raises(StorageError) as info:
        store.read("link.txt")
    assert info.value.op == "read"
    assert info.value.service == "fs"
    assert info.value.path == "/link.txt"


# -- paths naming directories ---------------------------------------------------------


@pytest.mark.parametrize("path", [".", "x/.", "a/..", "x/y/..", "x\\.", "./."])
@pytest.mark.parametrize("op", ["read", "write", "open_reader", "append", "copy", "move"])
def test_a_path_ending_in_dot_is_no_object_path(op: str, path: str) -> None:
    with pytest.raises(PathInvalidError) as info:
        resolve(op, "fs", "/w/", path)
    assert info.value.op == op
    assert info.value.path == path
    assert "names a directory" in info.value.reason


@pytest.mark.parametrize(
    ("path", "expected"), [(".", "/w/"), ("x/.", "/w/x/"), ("a/..", "/w/"), ("x/y/..", "/w/x/")]
)
@pytest.mark.parametrize("op", ["stat", "delete", "create_dir"])
def test_directory_operations_take_a_dot_path_as_the_directory(
    op: str, path: str, expected: str
) -> None:
    assert resolve(op, "fs", "/w/", path) == expected


@pytest.mark.parametrize("op", ["write", "append", "copy", "move", "create_multipart"])
def test_operations_that_put_objects_refuse_a_directory_path(op: str) -> None:
    with pytest.raises(PathInvalidError, match="takes an object path, not a directory"):
        resolve(op, "memory", "/w/", "d/")


def test_write_of_dot_with_a_work_dir_leaves_the_work_dir_a_directory(tmp_path: Path) -> None:
    store = FsStorage(root=str(tmp_path), work_dir="/w/")
    store.write("keep.txt", b"k")
    for path in (".", "sub/..", "x/."):
        with pytest.raises(PathInvalidError):
            store.write(path, b"must not land")
    assert (tmp_path / "w").is_dir()
    assert (tmp_path / "w" / "keep.txt").read_bytes() == b"k"


@pytest.mark.parametrize("path", [None, 3, b"d/"])
def test_list_refuses_a_non_str_path(path: object) -> None:
    with pytest.raises(PathInvalidError, match="must be a str"):
        join_dir("list", "memory", "/w/", path)  # type: ignore[arg-type]
    with pytest.raises(PathInvalidError, match="must be a str"):
        list(MemoryStorage().list(path))  # type: ignore[arg-type]
