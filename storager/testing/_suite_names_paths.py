"""The conformance tests of names, paths and errors: escaping, climbing, work_dir, messages."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable

import pytest

from storager._errors import NotFoundError, PathInvalidError, StorageError
from storager._protocols import Storager
from storager._service import Service
from storager.testing._gating import covers
from storager.testing._suite_base import Factory, _files, _paths


class NamesPathsTests:
    """The contracts of names, paths and errors; a mixin of ``StoragerSuite``."""

    @covers("write", "read", "stat", "list")
    @pytest.mark.parametrize(
        "name",
        [
            "with space.txt",
            "caf\u00e9.txt",
            "\u65e5\u672c/\u8a9e.txt",
            "emoji-\U0001f600.txt",
            "at@and&plus+hash#.txt",
            "percent%41%2F%25.txt",
            "equals=sign.txt",
            "question?mark.txt",
            "/".join(f"level{i}" for i in range(12)) + "/leaf.txt",
        ],
        ids=[
            "space",
            "unicode",
            "cjk",
            "emoji",
            "at-amp-plus-hash",
            "percent",
            "equals",
            "question",
            "nested-12",
        ],
    )
    def test_names_round_trip(self, store: Storager, name: str) -> None:
        content = name.encode()
        try:
            store.write(name, content)
        except PathInvalidError as exc:
            if "?" in name:
                pytest.skip(f"store refuses '?' in names: {exc}")
            raise
        assert store.read(name) == content
        stat = store.stat(name)
        assert stat.content_length == len(content)
        assert stat.path == name
        parent = name.rpartition("/")[0]
        assert _paths(store.list(parent + "/" if parent else "")) == Counter({name: 1})
        assert _files(store.list("", list_mode="prefix")) == Counter({name: 1})

    @covers("write", "read", "stat", "delete", "list")
    def test_path_climbing_past_root_raises_path_invalid(self, store: Storager) -> None:
        depth = store.metadata().work_dir.count("/") - 1
        marker = f"escape-{secrets.token_hex(4)}.txt"
        climbs = [
            "../" * (depth + 1) + marker,
            "/../" + marker,
            "a/" + "../" * (depth + 2) + marker,
        ]
        for path in climbs:
            for call in _path_calls(store, path):
                with pytest.raises(PathInvalidError) as info:
                    call()
                assert isinstance(info.value, ValueError)
        with pytest.raises(NotFoundError):
            store.stat("/" + marker)
        assert list(store.list("", list_mode="prefix")) == []

    @covers("write", "read", "stat", "delete", "list")
    def test_nul_byte_in_path_raises_path_invalid(self, store: Storager) -> None:
        calls = _path_calls(store, "nul\x00.txt")
        for call in calls:
            with pytest.raises(PathInvalidError) as info:
                call()
            assert isinstance(info.value, ValueError)
        assert list(store.list("", list_mode="prefix")) == []

    @covers("write", "read", "stat")
    def test_absolute_path_inside_store_works(self, store: Storager) -> None:
        work_dir = store.metadata().work_dir
        store.write("rel.txt", b"relative")
        assert store.read(work_dir + "rel.txt") == b"relative"
        store.write(work_dir + "abs/x.txt", b"absolute")
        assert store.read("abs/x.txt") == b"absolute"
        assert store.stat(work_dir + "abs/x.txt").path == "abs/x.txt"

    @covers("write", "read", "list")
    def test_backslashes_are_normalised(self, store: Storager) -> None:
        store.write("back\\slash.txt", b"x")
        assert store.read("back/slash.txt") == b"x"
        assert _paths(store.list("back/")) == Counter({"back/slash.txt": 1})
        assert store.read("back\\slash.txt") == b"x"

    def test_metadata_work_dir_equals_the_one_given(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        base = getattr(storager_factory, "base_work_dir", "/")
        meta = store.metadata()
        assert meta.work_dir == base.rstrip("/") + work_dir
        assert meta.service

    # -- errors -----------------------------------------------------------------------

    @covers("read", "stat", "open_reader")
    def test_errors_carry_op_service_and_path(self, store: Storager) -> None:
        # A composite store (a combinator) passes on the error of the child that
        # answered, so the service named is that child's: any non-empty name shown in
        # the message is right; a plain service names itself.
        service = store.metadata().service
        calls: dict[str, Callable[[], object]] = {
            "read": lambda: store.read("no/such-object.txt"),
            "stat": lambda: store.stat("no/such-object.txt"),
            "open_reader": lambda: store.open_reader("no/such-object.txt"),
        }
        for op, call in calls.items():
            with pytest.raises(StorageError) as info:
                call()
            err = info.value
            assert isinstance(err, NotFoundError)
            assert err.op == op
            assert err.service and err.service in str(err)
            assert err.service == service or not isinstance(store, Service)
            assert err.path.endswith("no/such-object.txt")
            assert op in str(err)
            assert err.path in str(err)
        with pytest.raises(PathInvalidError) as invalid:
            store.write("../" * 40 + "x", b"x")
        assert invalid.value.op == "write"
        assert invalid.value.service == service or not isinstance(store, Service)
        assert "write" in str(invalid.value)


def _path_calls(store: Storager, path: str) -> list[Callable[[], object]]:
    """Return calls of write, read, stat, delete and list on ``path``."""
    return [
        lambda: store.write(path, b"x"),
        lambda: store.read(path),
        lambda: store.stat(path),
        lambda: store.delete(path),
        lambda: list(store.list(path)),
    ]
