"""The conformance suite on the local services: fs under a temporary root, and memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import Storager
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import StoragerSuite


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fs-root")


class TestFs(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, fs_root: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(fs_root), work_dir=work_dir, **pairs)

        return factory


class TestMemory(StoragerSuite):
    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return MemoryStorage(work_dir=work_dir, **pairs)

        return factory
