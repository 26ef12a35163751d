"""The conformance suite over every combinator, each wrapping real memory and fs stores.

A combinator is a Storager like any other, so the same contracts hold for it. Each
factory passes the suite's init pairs (``loose_pairs``, ``default_content_type``) on
to the leaf stores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import Storager
from storager.combinators import (
    Audited,
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
from storager.testing import StoragerSuite

Factory = Callable[..., Storager]


class _CombinatorSuite(StoragerSuite):
    """The whole suite; combinators pass their children's errors through."""


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("combinator-fs")


def _memory(wd: str, pairs: dict[str, Any]) -> Storager:
    return MemoryStorage(work_dir=wd, **pairs)


def _fs(root: Path, name: str) -> Callable[[str, dict[str, Any]], Storager]:
    def make(wd: str, pairs: dict[str, Any]) -> Storager:
        return FsStorage(root=str(root / name), work_dir=wd, **pairs)

    return make


def _mirror_suite(kinds: str, write: str, read: str = "first") -> type[_CombinatorSuite]:
    class Suite(_CombinatorSuite):
        # A memory target keeps every object in process memory: no bound to check.
        write_memory_limit = None if "m" in kinds else StoragerSuite.write_memory_limit

        @pytest.fixture
        def storager_factory(self, fs_root: Path) -> Factory:
            def factory(work_dir: str, **pairs: Any) -> Storager:
                targets = {}
                for i, kind in enumerate(kinds):
                    leaf = _memory if kind == "m" else _fs(fs_root, f"mirror-{i}")
                    targets[f"t{i}-{kind}"] = leaf(work_dir, pairs)
                return Mirror(targets, write=write, read=read)

            return factory

    return Suite


TestMirror2Sequential = _mirror_suite("mf", "sequential")
TestMirror2SequentialFs = _mirror_suite("ff", "sequential")
TestMirror2Parallel = _mirror_suite("fm", "parallel", "race")
TestMirror3Sequential = _mirror_suite("mfm", "sequential")
# All-memory mirrors have every capability a Mirror can have (Segmenter, Linker...).
TestMirror2Memory = _mirror_suite("mm", "sequential")
TestMirror3ParallelMemory = _mirror_suite("mmm", "parallel", "race")


def _single_suite(
    wrap: Callable[[Callable[[str, dict[str, Any]], Storager], str, dict[str, Any]], Storager],
    leaf: str,
) -> type[_CombinatorSuite]:
    class Suite(_CombinatorSuite):
        write_memory_limit = None if leaf == "memory" else StoragerSuite.write_memory_limit

        @pytest.fixture
        def storager_factory(self, fs_root: Path) -> Factory:
            make = _memory if leaf == "memory" else _fs(fs_root, "single")

            def factory(work_dir: str, **pairs: Any) -> Storager:
                return wrap(make, work_dir, pairs)

            return factory

    return Suite


def _retry(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Retry(make(wd, pairs), RetryPolicy(initial_backoff=0.001))


def _timeout(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Timeout(make(wd, pairs), 30.0)


def _logged(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Logged(make(wd, pairs))


def _audited(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Audited(make(wd, pairs), MemoryStorage())


def _failover(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Failover(make(wd, pairs), MemoryStorage(work_dir=wd, **pairs))


def _cached(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Cached(MemoryStorage(work_dir=wd, **pairs), make(wd, pairs), max_bytes=1 << 20)


def _router(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    # The second mount lies outside the test's work_dir, so listings there stay exact.
    return Router({"": make("/", pairs), "elsewhere/": MemoryStorage(**pairs)}, work_dir=wd)


def _prefixed(make: Any, wd: str, pairs: dict[str, Any]) -> Storager:
    return Prefixed(make("/", pairs), "view/", work_dir=wd)


TestRetryMemory = _single_suite(_retry, "memory")
TestRetryFs = _single_suite(_retry, "fs")
TestTimeoutMemory = _single_suite(_timeout, "memory")
TestTimeoutFs = _single_suite(_timeout, "fs")
TestLoggedMemory = _single_suite(_logged, "memory")
TestLoggedFs = _single_suite(_logged, "fs")
TestAuditedMemory = _single_suite(_audited, "memory")
TestAuditedFs = _single_suite(_audited, "fs")
TestFailoverMemory = _single_suite(_failover, "memory")
TestFailoverFs = _single_suite(_failover, "fs")
TestCachedMemory = _single_suite(_cached, "memory")
TestCachedFs = _single_suite(_cached, "fs")
TestRouterMemory = _single_suite(_router, "memory")
TestRouterFs = _single_suite(_router, "fs")
TestPrefixedMemory = _single_suite(_prefixed, "memory")
TestPrefixedFs = _single_suite(_prefixed, "fs")


class TestNestedTree(_CombinatorSuite):
    """Logged(Retry(Mirror({primary: Cached(memory, fs), backup: Timeout(fs)})))."""

    @pytest.fixture
    def storager_factory(self, fs_root: Path) -> Factory:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            primary = Cached(
                MemoryStorage(work_dir=work_dir, **pairs),
                FsStorage(root=str(fs_root / "tree-a"), work_dir=work_dir, **pairs),
            )
            backup = Timeout(
                FsStorage(root=str(fs_root / "tree-b"), work_dir=work_dir, **pairs), 30.0
            )
            mirror = Mirror({"primary": primary, "backup": backup}, write="parallel")
            return Logged(Retry(mirror, RetryPolicy(initial_backoff=0.001)))

        return factory
