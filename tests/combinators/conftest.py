from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
