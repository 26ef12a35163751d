from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storager import Storager
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage


@pytest.fixture
def mem() -> Iterator[MemoryStorage]:
    store = MemoryStorage()
    yield store
    store.close()


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FsStorage]:
    store = FsStorage(root=str(tmp_path / "fs"))
    yield store
    store.close()


@pytest.fixture(params=["memory", "fs"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Storager]]:
    """A factory of fresh leaf stores, once memory and once fs: ``make("name")``."""
    made: list[Storager] = []

    def factory(name: str = "s") -> Storager:
        store: Storager
        if request.param == "memory":
            store = MemoryStorage()
        else:
            store = FsStorage(root=str(tmp_path / name))
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()
