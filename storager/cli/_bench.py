"""bench: small-object PUT/GET/HEAD operations per second and large-object MB/s of one store.

Everything happens under ``<URL>/.storager-bench-<random>/`` and is deleted at the end,
also when a step fails. Small objects go ``-j`` at a time, as cp and sync send them; the
large object is one streamed write and one streamed read (the service's own parallel
parts and ranges, where it has them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from storager._errors import StorageError
from storager._protocols import Storager
from storager.cli._commands import Context, UsageError, abs_path, classify, files_under
from storager.cli._progress import human_bytes

__all__ = ["cmd_bench"]

#: The large object is written from chunks of this size (a stream, not one buffer).
_CHUNK = 1 << 20


def _timed(jobs: int, count: int, action: Callable[[int], object]) -> float:
    """Run ``action(i)`` for each i, ``jobs`` at a time; return the seconds taken."""
    started = time.perf_counter()
    if jobs == 1:
        for i in range(count):
            action(i)
    else:
        with ThreadPoolExecutor(jobs, thread_name_prefix="storager-bench") as pool:
            for _ in pool.map(action, range(count)):
                pass
    return time.perf_counter() - started


def _chunks(size: int) -> Iterator[bytes]:
    """Yield ``size`` bytes as 1 MiB chunks of one random block (a stream, not one buffer)."""
    block = os.urandom(min(_CHUNK, size))
    while size > 0:
        yield block[: min(size, len(block))]
        size -= len(block)


def run_bench(
    store: Storager, directory: str, *, size: int, count: int, large: int, jobs: int
) -> dict[str, Any]:
    """Measure the store; return ops/s, MB/s and the parameters."""
    base = f"{directory}.storager-bench-{secrets.token_hex(6)}/"
    payload = os.urandom(size)
    paths = [f"{base}small/{i:06d}" for i in range(count)]
    results: dict[str, Any] = {
        "size": size,
        "count": count,
        "jobs": jobs,
        "large_size": large,
    }
    try:
        put = _timed(jobs, count, lambda i: store.write(paths[i], payload))
        get = _timed(jobs, count, lambda i: store.read(paths[i]))
        head = _timed(jobs, count, lambda i: store.stat(paths[i]))
        results["put_ops"] = round(count / put, 1)
        results["get_ops"] = round(count / get, 1)
        results["head_ops"] = round(count / head, 1)
        if large:
            big = f"{base}large.bin"
            started = time.perf_counter()
            store.write(big, _chunks(large))
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            with store.open_reader(big) as reader:
                while reader.read(8 * _CHUNK):
                    pass
            read_s = time.perf_counter() - started
            results["large_write_mb_s"] = round(large / write_s / 1e6, 1)
            results["large_read_mb_s"] = round(large / read_s / 1e6, 1)
    finally:
        _clean(store, base, jobs)
    return results


def _clean(store: Storager, base: str, jobs: int) -> None:
    """Delete everything under ``base`` (best effort: the run's own error matters more)."""
    with contextlib.suppress(StorageError):
        found = [abs_path(o.path) for o in files_under(store, base)]
        _timed(jobs, len(found), lambda i: store.delete(found[i]))
        store.delete(base + "small/")
        store.delete(base)


def cmd_bench(args: argparse.Namespace, ctx: Context) -> None:
    """Measure small-object ops/s and large-object MB/s against the store at URL."""
    if args.count < 1:
        raise UsageError("bench: --count must be at least 1")
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    directory, single = classify(store, loc)
    if single is not None or directory is None:
        raise UsageError(f"bench: {loc.arg} names an object; give a directory to work under")
    results = run_bench(
        store, directory, size=args.size, count=args.count, large=args.large, jobs=args.jobs
    )
    if args.json:
        ctx.stdout.write(json.dumps({"url": loc.arg, **results}) + "\n")
        return
    out = ctx.stdout
    small = human_bytes(args.size)
    out.write(f"{'operation':<28}{'result':>14}\n")
    out.write(f"{'PUT ' + small + f' (-j {args.jobs})':<28}{results['put_ops']:>10.1f} op/s\n")
    out.write(f"{'GET ' + small:<28}{results['get_ops']:>10.1f} op/s\n")
    out.write(f"{'HEAD':<28}{results['head_ops']:>10.1f} op/s\n")
    if args.large:
        big = human_bytes(args.large)
        out.write(f"{'write ' + big:<28}{results['large_write_mb_s']:>10.1f} MB/s\n")
        out.write(f"{'read ' + big:<28}{results['large_read_mb_s']:>10.1f} MB/s\n")
