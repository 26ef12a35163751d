"""Shared fixtures of the benchmarks: a fresh directory per session for fs stores.

The benchmarks live outside ``tests/`` (``testpaths = ["tests"]``), so the test run
never collects them. Run them with ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The scripts beside this file are imported by the benchmark modules; pytest's default
# import mode puts this folder on sys.path already, this keeps other modes working too.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh, empty directory for this session's fs stores."""
    return tmp_path_factory.mktemp("storager-bench")
