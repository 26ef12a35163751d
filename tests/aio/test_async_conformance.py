"""The async conformance suite over the async view of memory, fs and combinator trees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import Storager
from storager.combinators import (
    Cached,
    Failover,
    Logged,
    Mirror,
    Prefixed,
    Retry,
    RetryPolicy,
    Router,
    Timeout,
)
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


class TestAsyncNestedTree(AsyncStoragerSuite):
    """Logged(Retry(Mirror({primary: Cached(memory, fs), backup: Timeout(fs)})))."""

    @pytest.fixture
    def storager_factory(self, tmp_path: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            primary = Cached(
                MemoryStorage(work_dir=work_dir, **pairs),
                FsStorage(root=str(tmp_path / "a"), work_dir=work_dir, **pairs),
            )
            backup = Timeout(FsStorage(root=str(tmp_path / "b"), work_dir=work_dir, **pairs), 30.0)
            mirror = Mirror({"primary": primary, "backup": backup}, write="parallel")
            return Logged(Retry(mirror, RetryPolicy(initial_backoff=0.001)))

        return factory


class TestAsyncRouterOverPrefixed(AsyncStoragerSuite):
    write_memory_limit = None  # memory keeps the objects: only the fs suites bound it

    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            routes = {
                "": Prefixed(MemoryStorage(**pairs), "view/"),
                "elsewhere/": MemoryStorage(**pairs),
            }
            return Router(routes, work_dir=work_dir)

        return factory
