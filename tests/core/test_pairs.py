"""Pairs: typed, checked, rejected when unsupported, defaulted where declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storager import PairInvalidError, PairRequiredError, PairUnsupportedError
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage


@pytest.fixture
def fs(tmp_path: Path) -> FsStorage:
    return FsStorage(root=str(tmp_path))


@pytest.mark.parametrize(
    ("call", "pair"),
    [
        (lambda s: s.read("a", offset="1"), "offset"),
        (lambda s: s.read("a", offset=True), "offset"),
        (lambda s: s.read("a", size=-1), "size"),
        (lambda s: s.read("a", io_callback="print"), "io_callback"),
        (lambda s: s.write("a", b"x", content_type=5), "content_type"),
        (lambda s: s.write("a", b"x", user_metadata={"k": 1}), "user_metadata"),
        (lambda s: list(s.list("", list_mode="tree")), "list_mode"),
        (lambda s: s.presign_read("a", expire=1.5), "expire"),
    ],
)
def test_a_pair_of_the_wrong_type_raises_pair_invalid(call: Any, pair: str) -> None:
    store = MemoryStorage()
    store.write("a", b"data")
    with pytest.raises(PairInvalidError) as info:
        call(store)
    assert f"'{pair}'" in str(info.value)
    assert info.value.service == "memory"
    assert store.read("a") == b"data"


def test_an_unsupported_pair_names_the_pair_the_op_and_the_service(fs: FsStorage) -> None:
    with pytest.raises(PairUnsupportedError) as info:
        fs.write("a.txt", b"x", content_type="text/plain")
    err = info.value
    assert (err.op, err.service) == ("write", "fs")
    assert str(err) == "write fs:a.txt: pair 'content_type' not supported by fs for write"
    assert not (Path(fs._root) / "a.txt").exists()


def test_several_unsupported_pairs_are_all_named(fs: FsStorage) -> None:
    with pytest.raises(PairUnsupportedError, match="pairs 'content_type', 'if_match'"):
        fs.stat("a.txt", if_match="x", content_type="y")


def test_loose_pairs_ignores_unsupported_pairs(tmp_path: Path) -> None:
    store = FsStorage(root=str(tmp_path), loose_pairs=True)
    assert store.write("a.txt", b"x", content_type="text/plain").content_length == 1
    assert store.read("a.txt", storage_class="COLD") == b"x"


def test_loose_pairs_still_type_checks_supported_pairs(tmp_path: Path) -> None:
    store = FsStorage(root=str(tmp_path), loose_pairs=True)
    with pytest.raises(PairInvalidError):
        store.write("a.txt", b"x", sync="yes")


def test_default_pairs_apply_when_the_caller_gives_none() -> None:
    store = MemoryStorage(default_content_type="text/plain")
    assert store.write("a", b"x").content_type == "text/plain"
    assert store.stat("a").content_type == "text/plain"


def test_the_callers_value_wins_over_the_default() -> None:
    store = MemoryStorage(default_content_type="text/plain")
    assert store.write("b", b"{}", content_type="application/json").content_type == (
        "application/json"
    )


def test_a_default_pair_of_the_wrong_type_is_refused_at_init() -> None:
    with pytest.raises(PairInvalidError, match="'default_content_type'"):
        MemoryStorage(default_content_type=3)  # type: ignore[arg-type]


def test_a_missing_required_init_pair_raises_pair_required() -> None:
    with pytest.raises(PairRequiredError) as info:
        FsStorage()
    assert str(info.value) == "new fs: pair 'root' is required"


def test_an_unknown_init_pair_raises_pair_unsupported() -> None:
    with pytest.raises(PairUnsupportedError) as info:
        MemoryStorage(colour="blue")
    assert str(info.value) == "new memory: pair 'colour' not supported by memory for new"


def test_an_unknown_init_pair_is_ignored_with_loose_pairs() -> None:
    store = MemoryStorage(colour="blue", loose_pairs=True)
    assert store.write("a", b"x").content_length == 1


@pytest.mark.parametrize(
    "pairs",
    [{"root": 5}, {"root": "/tmp", "loose_pairs": "yes"}, {"root": "/tmp", "work_dir": 1}],
)
def test_init_pairs_of_the_wrong_type_raise_pair_invalid(pairs: dict[str, Any]) -> None:
    with pytest.raises(PairInvalidError):
        FsStorage(**pairs)
