"""Local operations: storager's memory and fs services against the same work done directly.

Each row times one operation on 4 KiB objects over many distinct keys (cycled), after a
warm-up, against the plain-Python way to do the same work:

- memory against a ``dict``: ``d[k] = data``, ``d[k]``, ``len(d[k])``;
- fs against the ``os`` module and ``open()``: write is open + write + close of a file
  in a directory, read is open + read, stat is ``os.stat`` giving the size and mtime.

Storager's fs write is atomic (temporary file + rename), so it does one more syscall
than the plain write, and every fs operation resolves its path beneath a descriptor held
on the root (one ``openat`` + ``close`` per directory component, here one), where the raw
side lets the kernel resolve the whole path; see benchmarks/README.md. ``--dir /dev/shm``
takes the disk out of the write rows.

Run ``python benchmarks/local_ops.py`` for a table of ops/s (the median of 3 rounds,
raw and storager interleaved in each round) and the ratio storager/raw.
``benchmarks/test_local_ops.py`` times the same callables under pytest-benchmark.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import cycle, islice

import storager
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

SIZE = 4096
KEYS = 1000
DATA = os.urandom(SIZE)

#: One operation on one key.
Op = Callable[[str], object]


@dataclass(frozen=True)
class Pair:
    """One row: the storager callable and the raw callable doing the same work."""

    name: str
    storager_op: Op
    storager_keys: Sequence[str]
    raw_op: Op
    raw_keys: Sequence[str]
    ops: int  # how many operations one timed round runs


def keys(count: int = KEYS) -> list[str]:
    """Return ``count`` distinct object keys, all in one directory."""
    return [f"bench/k{i:05d}" for i in range(count)]


# -- memory against a dict ----------------------------------------------------------------


def memory_pairs(scale: float = 1.0) -> list[Pair]:
    """Build the memory rows; the objects exist before the read and stat rows run."""
    store = MemoryStorage()
    table: dict[str, bytes] = {}
    names = keys()

    def dict_write(key: str) -> None:
        table[key] = DATA

    def dict_read(key: str) -> bytes:
        return table[key]

    def dict_stat(key: str) -> int:
        return len(table[key])

    def store_write(key: str) -> storager.Object:
        return store.write(key, DATA)

    for key in names:
        store_write(key)
        dict_write(key)
    n = int(200_000 * scale)
    return [
        Pair("memory write", store_write, names, dict_write, names, n),
        Pair("memory read", store.read, names, dict_read, names, n),
        Pair("memory stat", store.stat, names, dict_stat, names, n),
    ]


# -- fs against os / open() ---------------------------------------------------------------


def fs_pairs(root: str, scale: float = 1.0) -> list[Pair]:
    """Build the fs rows under ``root`` (a fresh directory); objects exist before reads."""
    store = FsStorage(root=os.path.join(root, "storager"))
    raw_root = os.path.join(root, "raw")
    names = keys()
    raw_paths = [os.path.join(raw_root, name) for name in names]
    os.makedirs(os.path.dirname(raw_paths[0]), exist_ok=True)

    def raw_write(path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(DATA)

    def raw_read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def raw_stat(path: str) -> tuple[int, float]:
        info = os.stat(path)
        return info.st_size, info.st_mtime

    counter = itertools.count()

    def raw_atomic_write(path: str) -> None:
        # What storager's fs write does, in plain os calls: temp file, write, rename.
        tmp = f"{path.rpartition('/')[0]}/.tmp-{next(counter)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, DATA)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def store_write(key: str) -> storager.Object:
        return store.write(key, DATA)

    for name, path in zip(names, raw_paths, strict=True):
        store_write(name)
        raw_write(path)
    writes = int(3_000 * scale)
    return [
        Pair("fs write", store_write, names, raw_write, raw_paths, writes),
        Pair("fs write/atomic", store_write, names, raw_atomic_write, raw_paths, writes),
        Pair("fs read", store.read, names, raw_read, raw_paths, int(40_000 * scale)),
        Pair("fs stat", store.stat, names, raw_stat, raw_paths, int(100_000 * scale)),
    ]


# -- timing -------------------------------------------------------------------------------


def run(op: Op, calls: Sequence[str]) -> float:
    """Call ``op`` on each of ``calls`` and return the seconds it took."""
    start = time.perf_counter()
    for arg in calls:
        op(arg)
    return time.perf_counter() - start


def ops_per_second(op: Op, args: Sequence[str], n: int) -> float:
    """Run ``op`` ``n`` times over ``args`` (cycled) and return operations per second."""
    return n / run(op, list(islice(cycle(args), n)))


@dataclass(frozen=True)
class Row:
    name: str
    storager_ops: float
    raw_ops: float

    @property
    def ratio(self) -> float:
        return self.storager_ops / self.raw_ops


def measure(pair: Pair, rounds: int = 3, slices: int = 20) -> Row:
    """Warm up, then time ``rounds`` rounds and return the median ops/s of each side.

    Within a round raw and storager alternate in ``slices`` slices, so that a change
    in machine load (other processes, disk writeback) hits both sides alike.
    """
    warm = max(pair.ops // 10, len(pair.raw_keys))
    ops_per_second(pair.raw_op, pair.raw_keys, warm)
    ops_per_second(pair.storager_op, pair.storager_keys, warm)
    per_slice = max(pair.ops // slices, 1)
    n = per_slice * slices
    # Each slice takes the next keys in the cycle, so a round touches every key.
    raw_calls = list(islice(cycle(pair.raw_keys), n))
    our_calls = list(islice(cycle(pair.storager_keys), n))
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        raw_time = our_time = 0.0
        for start in range(0, n, per_slice):
            raw_time += run(pair.raw_op, raw_calls[start : start + per_slice])
            our_time += run(pair.storager_op, our_calls[start : start + per_slice])
        raw.append(per_slice * slices / raw_time)
        ours.append(per_slice * slices / our_time)
    return Row(pair.name, statistics.median(ours), statistics.median(raw))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per row (median)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply operations per round")
    parser.add_argument("--dir", default=None, help="parent of the fresh temporary directory")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {SIZE} B objects, {KEYS} keys")
    print(f"median of {args.rounds} rounds; ratio = storager ops/s / raw ops/s (fs target >= 0.7)")
    print(f"{'row':<14} {'storager ops/s':>15} {'raw ops/s':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="storager-bench-", dir=args.dir) as root:
        for pair in memory_pairs(args.scale) + fs_pairs(root, args.scale):
            row = measure(pair, args.rounds)
            print(
                f"{row.name:<14} {row.storager_ops:>15,.0f} {row.raw_ops:>12,.0f} {row.ratio:>7.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
