"""What each combinator costs over the bare memory store, on 4 KiB operations.

Run with ``pytest benchmarks/test_combinators.py --benchmark-only``. The parallel
mirror case injects 20 ms of latency into each of 3 targets: a parallel write should
take about one latency, not three.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
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
    ReadOnly,
    Retry,
    Router,
    Timeout,
)
from storager.services.memory import MemoryStorage
from storager.testing.faulty import FaultyStorager

PAYLOAD = secrets.token_bytes(4096)

BUILDERS: dict[str, Callable[[], Storager]] = {
    "bare": MemoryStorage,
    "faulty": lambda: FaultyStorager(MemoryStorage()),
    "retry": lambda: Retry(MemoryStorage()),
    "timeout": lambda: Timeout(MemoryStorage(), 10.0),
    "logged": lambda: Logged(MemoryStorage()),
    "prefixed": lambda: Prefixed(MemoryStorage(), "p/"),
    "router": lambda: Router({"": MemoryStorage(), "other/": MemoryStorage()}),
    "failover": lambda: Failover(MemoryStorage(), MemoryStorage()),
    "cached": lambda: Cached(MemoryStorage(), MemoryStorage()),
    "audited": lambda: Audited(MemoryStorage(), MemoryStorage()),
    "mirror2-seq": lambda: Mirror({"a": MemoryStorage(), "b": MemoryStorage()}),
    "mirror2-seq-norollback": lambda: Mirror(
        {"a": MemoryStorage(), "b": MemoryStorage()}, rollback="none"
    ),
    "mirror2-par": lambda: Mirror({"a": MemoryStorage(), "b": MemoryStorage()}, write="parallel"),
}
READ_ONLY = {"readonly": lambda: ReadOnly(_seeded())}


def _seeded() -> Storager:
    store = MemoryStorage()
    store.write("obj", PAYLOAD)
    return store


@pytest.mark.parametrize("name", list(BUILDERS))
def test_write_4k(benchmark: Any, name: str) -> None:
    store = BUILDERS[name]()
    benchmark.group = "combinators: write 4 KiB"
    benchmark(store.write, "obj", PAYLOAD)
    store.close()


@pytest.mark.parametrize("name", [*BUILDERS, *READ_ONLY])
def test_read_4k(benchmark: Any, name: str) -> None:
    store = {**BUILDERS, **READ_ONLY}[name]()
    if name != "readonly":
        store.write("obj", PAYLOAD)
    benchmark.group = "combinators: read 4 KiB"
    assert benchmark(store.read, "obj") == PAYLOAD
    store.close()


@pytest.mark.parametrize("how", ["sequential", "parallel"])
def test_mirror_write_3_targets_20ms_latency(benchmark: Any, how: str) -> None:
    targets = {f"t{i}": FaultyStorager(MemoryStorage(), latency={"write": 0.02}) for i in range(3)}
    mirror = Mirror(targets, write=how, rollback="none")
    benchmark.group = "combinators: mirror write, 3 targets x 20 ms"
    benchmark.pedantic(mirror.write, args=("obj", PAYLOAD), rounds=15, iterations=1)
    mean = benchmark.stats.stats.mean
    if how == "parallel":
        assert mean < 0.045, f"parallel write took {mean * 1000:.1f} ms, about 1 latency expected"
    else:
        assert mean > 0.055
    mirror.close()
