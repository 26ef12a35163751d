"""Fixtures for the fsspec adapter's tests: a filesystem over each local store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import storager
from storager.fsspec import StoragerFileSystem


@pytest.fixture(params=["memory", "fs"])
def fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoragerFileSystem]:
    """A filesystem over a fresh memory store or an fs store in a temporary directory."""
    url = "memory://" if request.param == "memory" else f"fs://{tmp_path}"
    with storager.open(url) as store:
        yield StoragerFileSystem(store)
