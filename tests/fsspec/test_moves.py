"""``mv`` never deletes what it did not copy: onto itself, into itself, after a failed copy."""

from __future__ import annotations

import pytest

import storager
from storager import InvalidArgumentError, NotFoundError
from storager.fsspec import StoragerFileSystem
from tests.fsspec._doubles import watched


def _tree(fs: StoragerFileSystem) -> dict[str, bytes]:
    fs.pipe_file("d/a", b"A")
    fs.pipe_file("d/s/b", b"B")
    fs.pipe_file("keep", b"K")
    return {name: fs.cat_file(name) for name in fs.find("")}


def _contents(fs: StoragerFileSystem) -> dict[str, bytes]:
    return {name: fs.cat_file(name) for name in fs.find("")}


@pytest.mark.parametrize("target", ["d", "d/", "/d"])
def test_mv_of_a_directory_onto_itself_keeps_every_file(
    fs: StoragerFileSystem, target: str
) -> None:
    before = _tree(fs)
    fs.mv("d", target, recursive=True)
    assert _contents(fs) == before


def test_mv_of_a_file_onto_itself_keeps_it(fs: StoragerFileSystem) -> None:
    before = _tree(fs)
    fs.mv("d/a", "d/a")
    fs.mv(["d/a", "keep"], ["d/a", "moved"])
    before["moved"] = before.pop("keep")
    assert _contents(fs) == before


@pytest.mark.parametrize("target", ["d/s", "d/new"])
def test_mv_of_a_directory_into_itself_is_refused(fs: StoragerFileSystem, target: str) -> None:
    before = _tree(fs)
    with pytest.raises(InvalidArgumentError, match="into itself"):
        fs.mv("d", target, recursive=True)
    assert _contents(fs) == before


def test_mv_keeps_every_source_when_a_copy_fails() -> None:
    with storager.open("memory://") as inner:
        store = watched(inner)
        fs = StoragerFileSystem(store)
        before = _tree(fs)
        # fsspec's recursive copy skips a FileNotFoundError unless told to raise.
        store.watched.fail[("copy", "d/s/b")] = NotFoundError("copy", "memory", "d/s/b")
        with pytest.raises(NotFoundError):
            fs.mv("d", "e", recursive=True)
        assert {name: fs.cat_file(name) for name in before} == before


def test_mv_of_a_directory_elsewhere_still_moves_it(fs: StoragerFileSystem) -> None:
    before = _tree(fs)
    fs.mv("d", "e", recursive=True)
    assert _contents(fs) == {
        "e/a": before["d/a"],
        "e/s/b": before["d/s/b"],
        "keep": before["keep"],
    }


@pytest.mark.parametrize("source", ["d/*", "d/s/*", "d/**"])
def test_mv_of_a_glob_onto_its_own_directory_is_refused(
    fs: StoragerFileSystem, source: str
) -> None:
    before = _tree(fs)
    target = source.rsplit("/", 1)[0]
    with pytest.raises(InvalidArgumentError, match="onto itself"):
        fs.mv(source, target, recursive=True)
    assert _contents(fs) == before
