"""fs: a root that cannot be a directory is a storager error naming 'new' and the root."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import storager
from storager import InvalidArgumentError, StorageError
from storager.services.fs import FsStorage


def bad_roots(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "afile").write_bytes(b"x")
    return {
        "under a file": str(tmp_path / "afile" / "sub"),
        "the file itself": str(tmp_path / "afile"),
        "NUL": str(tmp_path / "a\x00b"),
        "too long": str(tmp_path / ("n" * 5000)),
        "a name too long": str(tmp_path / ("n" * 300)),
        "thousands deep": str(tmp_path) + "/a" * 3000,
    }


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's tmp_path, emptied after the test by ``rm -rf``.

    A failed deep root can leave directories nearly PATH_MAX deep behind; pytest's own
    cleanup (shutil.rmtree, recursive) dies on them with RecursionError at the end of every
    later session, so they are removed here by a tool that does not recurse.
    """
    yield tmp_path
    subprocess.run(["rm", "-rf", "--", str(tmp_path)], check=True)


CASES = [
    "under a file",
    "the file itself",
    "NUL",
    "too long",
    "a name too long",
    "thousands deep",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("how", ["FsStorage", "storager.open"])
def test_an_unusable_root_is_an_invalid_argument_naming_new_and_the_root(
    tmp_path: Path, case: str, how: str
) -> None:
    root = bad_roots(tmp_path)[case]
    opener: Callable[[], object] = (
        (lambda: FsStorage(root=root))
        if how == "FsStorage"
        else (lambda: storager.open("fs://" + root.replace("\x00", "%00")))
    )
    with pytest.raises(StorageError) as info:
        opener()
    exc = info.value
    assert isinstance(exc, InvalidArgumentError)
    assert isinstance(exc, ValueError)
    assert exc.op == "new"
    assert exc.service == "fs"
    text = str(exc)
    assert len(text) < 400  # a huge root is cut short
    shown = root.replace("\x00", "\\0")
    assert shown[:60] in text


def test_a_root_of_a_few_thousand_levels_that_exists_still_works_or_errs_cleanly(
    tmp_path: Path,
) -> None:
    # Deep but legal: a root of 200 levels is made and used.
    root = str(tmp_path) + "/a" * 200
    store = FsStorage(root=root)
    store.write("x/y.txt", b"deep")
    assert store.read("x/y.txt") == b"deep"
    store.close()
    # Deeper than Python's recursion limit yet under PATH_MAX: made without recursing.
    deeper = str(tmp_path) + "/b" * 1900
    store = FsStorage(root=deeper)
    store.write("y.txt", b"deeper")
    assert store.read("y.txt") == b"deeper"
    store.close()


@pytest.mark.parametrize("case", ["a name too long", "thousands deep", "too long"])
def test_a_root_that_fails_midway_leaves_no_directories_behind(tmp_path: Path, case: str) -> None:
    root = bad_roots(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InvalidArgumentError):
        FsStorage(root=root)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no "a", no "n..." left
