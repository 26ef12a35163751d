"""pytest-benchmark table of the capability checks in benchmarks/capability_check.py.

Each benchmarked call runs 1,000 checks in timeit's loop, so the fixture's own
per-call cost is spread thin: the times pytest-benchmark reports, in µs, read as ns per
check. ``python benchmarks/capability_check.py`` gives the absolute numbers.
"""

from __future__ import annotations

import timeit
from pathlib import Path
from typing import Any

import pytest
from capability_check import CASES, Case, namespace

CHECKS_PER_CALL = 1000


@pytest.fixture(scope="module")
def ns(bench_root: Path) -> dict[str, Any]:
    return namespace(str(bench_root / "capability"))


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.name}-{'yes' if c.answer else 'no'}" for c in CASES]
)
def test_capability_check(benchmark: Any, ns: dict[str, Any], case: Case) -> None:
    assert case.check(ns) is case.answer  # the row measures the answer it claims
    benchmark.group = "capability check (1,000 checks per call: us per call = ns per check)"
    timer = timeit.Timer(case.stmt, globals=ns)
    seconds = benchmark.pedantic(
        timer.timeit, args=(CHECKS_PER_CALL,), rounds=200, iterations=1, warmup_rounds=10
    )
    benchmark.extra_info["ns_per_check_last_round"] = seconds / CHECKS_PER_CALL * 1e9
