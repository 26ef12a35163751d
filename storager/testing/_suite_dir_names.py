"""The conformance tests of directory names: what a path naming a directory may do.

A path names a directory when it ends with ``/``, ``.`` or ``..``; operations on
objects refuse it before anything is touched, with the same error on every store.
A file and a directory never share a name on a store that declares
``exclusive_names`` (fs, sftp, memory, redis; s3, gcs and azblob when opened with the
pair). Paths must be strings, for every operation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from storager._errors import (
    AlreadyExistsError,
    NotFoundError,
    ObjectModeInvalidError,
    PathInvalidError,
)
from storager._protocols import Copier, Direr, Mover, Segmenter, Storager
from storager.testing._gating import covers
from storager.testing._suite_base import _files

#: What a store may raise when a name is taken by the other kind (file or directory).
_NAME_TAKEN = (ObjectModeInvalidError, AlreadyExistsError)


class DirectoryNameTests:
    """The contracts of directory names; a mixin of ``StoragerSuite``."""

    @covers("write", "read", "list")
    @pytest.mark.parametrize("path", [".", "x/.", "a/..", "x/y/..", "./."])
    def test_path_ending_in_dot_names_a_directory(self, store: Storager, path: str) -> None:
        with pytest.raises(PathInvalidError):
            store.write(path, b"must not land")
        with pytest.raises(PathInvalidError):
            store.read(path)
        assert _files(store.list("", list_mode="prefix")) == {}
        # The work_dir is still a directory: objects can be written under it.
        store.write("after.txt", b"ok")
        assert store.read("after.txt") == b"ok"

    @covers("list", "stat", "read", "write", "delete")
    @pytest.mark.parametrize("path", [None, b"a.txt", 7])
    def test_non_str_path_is_refused_by_every_operation(self, store: Storager, path: Any) -> None:
        calls: list[Callable[[], object]] = [
            lambda: list(store.list(path)),
            lambda: store.stat(path),
            lambda: store.read(path),
            lambda: store.write(path, b"x"),
            lambda: store.delete(path),
        ]
        for call in calls:
            with pytest.raises(PathInvalidError, match="must be a str"):
                call()
        assert _files(store.list("", list_mode="prefix")) == {}

    @covers("copy", "read")
    def test_copy_refuses_directory_paths_naming_the_wrong_one(self, store: Storager) -> None:
        assert isinstance(store, Copier)
        store.write("a.txt", b"a")
        store.write("d/inner.txt", b"inner")
        with pytest.raises(PathInvalidError) as src_error:
            store.copy("d/", "z.txt")
        assert src_error.value.path.endswith("d/")
        with pytest.raises(PathInvalidError) as dst_error:
            store.copy("a.txt", "d/")
        assert dst_error.value.path.endswith("d/")
        # A directory named without its slash is not an object to copy.
        with pytest.raises((ObjectModeInvalidError, NotFoundError)):
            store.copy("d", "z.txt")
        assert _files(store.list("", list_mode="prefix")) == {"a.txt": 1, "d/inner.txt": 1}

    @covers("move", "read")
    def test_move_refuses_directory_paths_naming_the_wrong_one(self, store: Storager) -> None:
        assert isinstance(store, Mover)
        store.write("a.txt", b"a")
        store.write("d/inner.txt", b"inner")
        with pytest.raises(PathInvalidError) as src_error:
            store.move("d/", "z.txt")
        assert src_error.value.path.endswith("d/")
        with pytest.raises(PathInvalidError) as dst_error:
            store.move("a.txt", "d/")
        assert dst_error.value.path.endswith("d/")
        with pytest.raises((ObjectModeInvalidError, NotFoundError)):
            store.move("d", "z.txt")
        assert _files(store.list("", list_mode="prefix")) == {"a.txt": 1, "d/inner.txt": 1}
        assert store.read("a.txt") == b"a"


class ExclusiveNameTests:
    """A file and a directory never share a name; a mixin of ``StoragerSuite``.

    Gated on the ``exclusive_names`` feature, and run alone (``NameSuite``) on object
    stores opened with the pair.
    """

    @covers("write", "read", "stat", feature="exclusive_names")
    def test_object_cannot_take_a_directory_name(self, store: Storager) -> None:
        store.write("d/inner.txt", b"inner")
        with pytest.raises(_NAME_TAKEN):
            store.write("d", b"file over a directory")
        assert store.read("d/inner.txt") == b"inner"
        assert store.stat("d").is_dir

    @covers("write", "read", feature="exclusive_names")
    def test_object_cannot_be_put_under_a_file(self, store: Storager) -> None:
        store.write("f", b"a file")
        with pytest.raises(_NAME_TAKEN):
            store.write("f/child.txt", b"under a file")
        assert store.read("f") == b"a file"

    @covers("create_dir", "read", feature="exclusive_names")
    def test_directory_cannot_take_a_file_name(self, store: Storager) -> None:
        assert isinstance(store, Direr)
        store.write("x", b"a file")
        with pytest.raises(_NAME_TAKEN):
            store.create_dir("x/")
        assert store.read("x") == b"a file"
        assert not store.stat("x").is_dir

    @covers("copy", "read", feature="exclusive_names")
    def test_copy_cannot_put_an_object_over_a_directory(self, store: Storager) -> None:
        assert isinstance(store, Copier)
        store.write("src.txt", b"source")
        store.write("d/inner.txt", b"inner")
        with pytest.raises(_NAME_TAKEN):
            store.copy("src.txt", "d")
        assert store.read("d/inner.txt") == b"inner"
        assert store.read("src.txt") == b"source"

    @covers("move", "read", feature="exclusive_names")
    def test_move_cannot_put_an_object_over_a_directory(self, store: Storager) -> None:
        assert isinstance(store, Mover)
        store.write("src.txt", b"source")
        store.write("d/inner.txt", b"inner")
        with pytest.raises(_NAME_TAKEN):
            store.move("src.txt", "d")
        assert store.read("d/inner.txt") == b"inner"
        assert store.read("src.txt") == b"source"

    @covers("copy", "move", "read", feature="exclusive_names")
    def test_copy_and_move_blame_the_destination_name(self, store: Storager) -> None:
        assert isinstance(store, Copier) and isinstance(store, Mover)
        store.write("src.txt", b"source")
        store.write("d/inner.txt", b"inner")
        store.write("f", b"a file")
        for verb in ("copy", "move"):
            for dst in ("d", "f/x.txt"):
                with pytest.raises(_NAME_TAKEN) as info:
                    getattr(store, verb)("src.txt", dst)
                assert info.value.op == verb and info.value.path.endswith(dst), info.value
        assert _files(store.list("", list_mode="prefix")) == {
            "src.txt": 1,
            "d/inner.txt": 1,
            "f": 1,
        }

    @covers("write", "create_dir", "read", feature="exclusive_names")
    def test_no_name_below_a_file_at_any_depth(self, store: Storager) -> None:
        store.write("f", b"a file")
        with pytest.raises(_NAME_TAKEN):
            store.write("f/g/h/deep.txt", b"under a file")
        if isinstance(store, Direr):
            with pytest.raises(_NAME_TAKEN):
                store.create_dir("f/sub/")
        assert _files(store.list("", list_mode="prefix")) == {"f": 1}
        assert store.read("f") == b"a file"

    @covers("complete_multipart", "read", feature="exclusive_names")
    def test_multipart_cannot_complete_over_a_directory(self, store: Storager) -> None:
        assert isinstance(store, Segmenter)
        store.write("d/inner.txt", b"inner")
        upload = store.create_multipart("d")
        try:
            part = store.write_multipart(upload, 1, b"part")
            with pytest.raises(_NAME_TAKEN):
                store.complete_multipart(upload, [part])
        finally:
            store.abort_multipart(upload)
        assert store.read("d/inner.txt") == b"inner"
        assert store.stat("d").is_dir

    @covers("write", "create_dir", "copy", "read", feature="exclusive_names")
    def test_names_of_the_same_kind_are_still_free(self, store: Storager) -> None:
        store.write("a/b.txt", b"one")
        store.write("a/b.txt", b"two")  # overwriting a file is no clash
        if isinstance(store, Direr):
            store.create_dir("a/")  # nor is creating a directory that exists
            store.create_dir("a/new/")
        if isinstance(store, Copier):
            store.copy("a/b.txt", "a/c.txt")
        assert store.read("a/b.txt") == b"two"
        assert store.stat("a").is_dir
