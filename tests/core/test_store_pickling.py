"""Stores refuse to pickle (they hold connections and credentials); errors still pickle."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

import storager
from storager import NotFoundError, PathInvalidError
from storager.combinators import Retry, RetryPolicy
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage


@pytest.mark.parametrize("kind", ["memory", "fs"])
def test_a_store_refuses_to_pickle_and_says_what_to_do(kind: str, tmp_path: Path) -> None:
    store: storager.Storager = (
        MemoryStorage() if kind == "memory" else FsStorage(root=str(tmp_path))
    )
    with pytest.raises(TypeError, match="pickle its connection string"):
        pickle.dumps(store)
    with pytest.raises(TypeError, match="cannot pickle"):
        copy.deepcopy(store)


def test_a_combinator_tree_does_not_pickle_or_copy_either() -> None:
    store = Retry(MemoryStorage(), RetryPolicy(max_attempts=2))
    with pytest.raises(TypeError, match=r"tree\.toml"):
        pickle.dumps(store)
    for copier in (copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle or copy"):
            copier(store)  # a copy would share the children and the async view


def test_errors_raised_by_a_store_still_pickle_without_the_store() -> None:
    store = MemoryStorage(work_dir="/w/")
    with pytest.raises(NotFoundError) as info:
        store.read("missing.txt")
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is NotFoundError
    assert (clone.op, clone.service, clone.path) == ("read", "memory", "/w/missing.txt")
    with pytest.raises(PathInvalidError) as bad:
        store.write("x/.", b"")
    assert str(pickle.loads(pickle.dumps(bad.value))) == str(bad.value)
