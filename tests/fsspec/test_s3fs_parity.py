"""The adapter and s3fs give the same answers about the same SeaweedFS bucket."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import s3fs

import storager
from storager.fsspec import StoragerFileSystem
from tests.services import test_s3

pytestmark = pytest.mark.s3

seaweedfs_bucket = test_s3.seaweedfs_bucket

FILES = {
    "a.txt": b"alpha",
    "d/b.bin": bytes(range(256)) * 8,
    "d/e/c.txt": b"",
    "d/e/f/g.txt": b"deep",
    "dd.txt": b"prefix sibling of d",
}


@pytest.fixture(scope="module")
def pair(seaweedfs_bucket: Any) -> Any:
    """(adapter, s3fs, s3fs root) over one prefix holding FILES."""
    run = f"parity-{secrets.token_hex(4)}"
    store = seaweedfs_bucket.open(f"/{run}/")
    ours = StoragerFileSystem(store)
    for name, data in FILES.items():
        ours.pipe_file(name, data)
    ours.mkdir("marked")  # an empty directory: a "marked/" marker object
    ours.mkdir("d/e/f")  # a marker beside keys: folded into the directory
    theirs = s3fs.S3FileSystem(
        key=seaweedfs_bucket.access_key,
        secret=seaweedfs_bucket.secret_key,
        endpoint_url=seaweedfs_bucket.endpoint,
        skip_instance_cache=True,
    )
    yield ours, theirs, f"{seaweedfs_bucket.name}/{run}"
    store.close()


PATHS = [
    "",
    "marked",
    "a.txt",
    "d",
    "d/b.bin",
    "d/e",
    "d/e/c.txt",
    "d/e/f",
    "dd.txt",
    "missing",
    "d/nope",
]


@pytest.mark.parametrize("path", PATHS)
def test_exists_isfile_isdir_agree(pair: Any, path: str) -> None:
    ours, theirs, root = pair
    full = f"{root}/{path}".rstrip("/")
    assert (ours.exists(path), ours.isfile(path), ours.isdir(path)) == (
        theirs.exists(full),
        theirs.isfile(full),
        theirs.isdir(full),
    )


@pytest.mark.parametrize("path", [p for p in PATHS if p and "miss" not in p and "nope" not in p])
def test_info_size_and_type_agree(pair: Any, path: str) -> None:
    ours, theirs, root = pair
    mine, other = ours.info(path), theirs.info(f"{root}/{path}")
    assert (mine["size"], mine["type"]) == (other["size"], other["type"])


@pytest.mark.parametrize("path", ["", "d", "d/e", "d/e/f", "marked", "a.txt"])
def test_ls_agrees(pair: Any, path: str) -> None:
    ours, theirs, root = pair
    full = f"{root}/{path}".rstrip("/")
    skip = len(root) + 1
    mine = [(e["name"], e["size"], e["type"]) for e in ours.ls(path)]
    listed = theirs.ls(full, detail=True, refresh=True)
    other = sorted(
        (e["name"][skip:], e["size"], e["type"]) for e in listed if _not_marker(e["name"])
    )
    assert mine == other


@pytest.mark.parametrize("path", ["", "d"])
def test_find_agrees(pair: Any, path: str) -> None:
    ours, theirs, root = pair
    full = f"{root}/{path}".rstrip("/")
    skip = len(root) + 1
    assert ours.find(path) == [name[skip:] for name in theirs.find(full) if _not_marker(name)]


def _not_marker(name: str) -> bool:
    """Whether s3fs's name is not a directory marker: s3fs lists "d/" as a file, we fold it."""
    return not name.endswith("/")


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (0, 10), (100, 300), (-50, None), (2000, 5000)]
)
def test_cat_file_ranges_agree(pair: Any, start: int | None, end: int | None) -> None:
    ours, theirs, root = pair
    mine = ours.cat_file("d/b.bin", start=start, end=end)
    assert mine == theirs.cat_file(f"{root}/d/b.bin", start=start, end=end)


def test_storager_errors_and_s3fs_errors_share_the_builtin(pair: Any) -> None:
    ours, theirs, root = pair
    with pytest.raises(FileNotFoundError) as mine:
        ours.cat_file("missing")
    with pytest.raises(FileNotFoundError):
        theirs.cat_file(f"{root}/missing")
    assert isinstance(mine.value, storager.NotFoundError)
