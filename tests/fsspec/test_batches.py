"""Batch calls (``rm`` of a tree, ``cat_ranges``) keep at most ``batch_size`` requests in flight.

A store's connection pool bounds how many requests it can serve at once (native async redis
with ``max_connections=2`` refused a 3,000-file ``rm``), so these counts are what is tested:
the store double counts its calls in flight; no timing.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

import storager
from storager import PermissionDeniedError
from storager.fsspec import StoragerFileSystem
from storager.fsspec._batches import DEFAULT_IN_FLIGHT
from tests.fsspec._doubles import Watched, watched

FILES = 40


@pytest.fixture
def store() -> Iterator[Watched]:
    """A watched memory store holding ``FILES`` small files under ``d/``."""
    with storager.open("memory://") as inner:
        for i in range(FILES):
            inner.write(f"d/{i:02}", b"%02d" % i)
        yield watched(inner)


def test_rm_of_a_tree_keeps_batch_size_deletes_in_flight(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    fs.rm("d", recursive=True, batch_size=4)
    assert not fs.exists("d")
    deletes = [path for op, path in store.watched.calls if op == "delete"]
    assert len(deletes) == FILES + 1  # the files, then the directory "d/"
    assert 1 < store.watched.max_in_flight <= 4


def test_rm_of_a_list_keeps_batch_size_infos_and_deletes_in_flight(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    names = [f"d/{i:02}" for i in range(FILES)]
    fs.rm(names, batch_size=3)
    assert fs.find("") == []
    assert 1 < store.watched.max_in_flight <= 3


def test_rm_uses_the_filesystem_batch_size(store: Watched) -> None:
    fs = StoragerFileSystem(store, batch_size=5)
    fs.rm("d", recursive=True)
    assert fs.find("") == []
    assert 1 < store.watched.max_in_flight <= 5


def test_without_a_batch_size_the_default_bounds_the_calls_in_flight(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    assert FILES > DEFAULT_IN_FLIGHT  # else the bound would not be reached
    names = [f"d/{i:02}" for i in range(FILES)]
    out = fs.cat_ranges(names, [0] * FILES, [1] * FILES)
    assert out == [b"%d" % (i // 10) for i in range(FILES)]
    assert 1 < store.watched.max_in_flight <= DEFAULT_IN_FLIGHT


def test_cat_ranges_keeps_batch_size_reads_in_flight(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    names = [f"d/{i:02}" for i in range(FILES)]
    out = fs.cat_ranges(names, [0] * FILES, [1] * FILES, batch_size=4)
    assert out == [b"%d" % (i // 10) for i in range(FILES)]
    assert 1 < store.watched.max_in_flight <= 4


def test_cat_ranges_errors_stay_in_place_with_batches(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    store.watched.fail[("read", "d/03")] = PermissionDeniedError("read", "memory", "d/03")
    names = [f"d/{i:02}" for i in range(8)]
    out = fs.cat_ranges(names, [0] * 8, [2] * 8, batch_size=2)
    assert isinstance(out[3], PermissionDeniedError)
    assert [item for i, item in enumerate(out) if i != 3] == [
        b"%02d" % i for i in range(8) if i != 3
    ]
    with pytest.raises(PermissionDeniedError):
        fs.cat_ranges(names, [0] * 8, [2] * 8, batch_size=2, on_error="raise")


def test_a_failed_delete_raises_the_storager_error_and_starts_no_more(store: Watched) -> None:
    fs = StoragerFileSystem(store)
    store.watched.fail[("delete", "d/05")] = PermissionDeniedError("delete", "memory", "d/05")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fs.rm("d", recursive=True, batch_size=2)
        except PermissionDeniedError as error:
            assert error.path == "d/05"
        else:
            pytest.fail("rm raised nothing")
        store.watched.fail.clear()  # the raised error, whose traceback holds the calls
        gc.collect()  # an unstarted call left unclosed warns "never awaited" here
    assert not [w for w in caught if "never awaited" in str(w.message)]
    deletes = [path for op, path in store.watched.calls if op == "delete"]
    assert len(deletes) < FILES
    assert len(fs.find("d")) == FILES - len(deletes) + 1  # d/05 is still there
