"""pytest-benchmark table of storager's memory and fs operations against raw work.

The rows and callables are those of benchmarks/local_ops.py (4 KiB objects, 1,000
keys cycled). Each benchmarked call runs one slice of ``SLICE`` operations over the
next keys, so time per call / ``SLICE`` is time per operation; each group holds the
storager and the raw side of one row. ``python benchmarks/local_ops.py`` prints the
same-run ratios.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import pytest
from local_ops import Op, Pair, fs_pairs, memory_pairs, run

SLICE = 100
ROWS = ["memory write", "memory read", "memory stat", "fs write", "fs read", "fs stat"]


@pytest.fixture(scope="module")
def pairs(bench_root: Path) -> dict[str, Pair]:
    root = bench_root / "local_ops"
    root.mkdir()
    return {p.name: p for p in memory_pairs() + fs_pairs(str(root))}


def _slices(keys: Sequence[str]) -> Iterator[list[str]]:
    keys_cycle = cycle(keys)
    while True:
        yield list(islice(keys_cycle, SLICE))


@pytest.mark.parametrize("side", ["storager", "raw"])
@pytest.mark.parametrize("row", ROWS)
def test_local_op(benchmark: Any, pairs: dict[str, Pair], row: str, side: str) -> None:
    pair = pairs[row]
    op: Op = pair.storager_op if side == "storager" else pair.raw_op
    keys = pair.storager_keys if side == "storager" else pair.raw_keys
    slices = _slices(keys)
    benchmark.group = f"{row} ({SLICE} ops per call)"
    benchmark.extra_info["ops_per_call"] = SLICE
    rounds = 30 if "write" in row else 200
    benchmark.pedantic(lambda: run(op, next(slices)), rounds=rounds, iterations=1, warmup_rounds=5)
