"""fsspec's own abstract test suite (copy, get, put, open, pipe) over the adapter.

Over memory, fs, s3 on SeaweedFS, and the combinators Mirror, Cached and Router.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

import storager
from storager.combinators import Cached, Mirror, Replicas, Router, Striped
from storager.fsspec import StoragerFileSystem
from tests.services import test_s3

seaweedfs_bucket = test_s3.seaweedfs_bucket


class _Suite(
    AbstractCopyTests,
    AbstractGetTests,
    AbstractPutTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractFixtures,
):
    """The whole abstract suite; a subclass gives ``store`` (a fresh store per test)."""

    @pytest.fixture
    def store(self) -> Iterator[storager.Storager]:
        raise NotImplementedError

    @pytest.fixture
    def fs(self, store: storager.Storager) -> StoragerFileSystem:
        return StoragerFileSystem(store)

    @pytest.fixture
    def fs_path(self) -> str:
        return f"t-{secrets.token_hex(4)}"

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join


class TestAbstractMemory(_Suite):
    @pytest.fixture
    def store(self) -> Iterator[storager.Storager]:
        with storager.open("memory://") as store:
            yield store


class TestAbstractFs(_Suite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[storager.Storager]:
        (tmp_path / "root").mkdir()
        with storager.open(f"fs://{tmp_path}/root") as store:
            yield store


@pytest.mark.s3
class TestAbstractS3SeaweedFS(_Suite):
    @pytest.fixture
    def store(self, seaweedfs_bucket: Any) -> Iterator[storager.Storager]:
        with seaweedfs_bucket.open(f"/fsspec-{secrets.token_hex(4)}/") as store:
            yield store


class TestAbstractMirror(_Suite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[storager.Storager]:
        one, two = storager.open("memory://"), storager.open(f"fs://{tmp_path}")
        with Mirror({"one": one, "two": two}) as mirror:  # closing a tree closes its stores
            yield mirror


class TestAbstractCached(_Suite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[storager.Storager]:
        with Cached(storager.open("memory://"), storager.open(f"fs://{tmp_path}")) as cached:
            yield cached


class TestAbstractRouter(_Suite):
    """The suite's paths all fall under the mount its ``fs_path`` names."""

    @pytest.fixture
    def fs_path(self) -> str:
        return "mounted"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[storager.Storager]:
        root, mounted = storager.open("memory://"), storager.open(f"fs://{tmp_path}")
        with Router({"/": root, "/mounted/": mounted}) as router:
            yield router


class TestAbstractStriped(_Suite):
    """Two replicas over three memory backends, 64 KiB chunks, manifests in memory."""

    @pytest.fixture
    def store(self) -> Iterator[storager.Storager]:
        backends = {name: storager.open("memory://") for name in ("a", "b", "c")}
        with Striped(
            backends, codec=Replicas(2), manifests=storager.open("memory://"), chunk_size=65536
        ) as striped:
            yield striped

    @pytest.fixture
    def supports_empty_directories(self, store: storager.Storager) -> bool:
        return isinstance(store, storager.Direr)
