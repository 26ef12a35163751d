"""The async conformance suite over the async view of memory, fs and a combinator tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import Storager
from storager.combinators import Failover, Retry
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite


class TestAsyncMemory(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return MemoryStorage(work_dir=work_dir, **pairs)

        return factory


class TestAsyncFs(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(tmp_path), work_dir=work_dir, **pairs)

        return factory


class TestAsyncRetryOverFailover(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            primary = FsStorage(root=str(tmp_path / "primary"), work_dir=work_dir, **pairs)
            backup = MemoryStorage(work_dir=work_dir, **pairs)
            return Retry(Failover(primary, backup))

        return factory
