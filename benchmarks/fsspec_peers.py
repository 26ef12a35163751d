"""The fsspec adapter against the direct storager call, s3fs and obstore's fsspec adapter.

Run from the repository root: ``python benchmarks/fsspec_peers.py [--rounds 5] [--big-mib 256]``.
The script starts SeaweedFS itself (``tests/servers/seaweedfs.py``) and uses one bucket
for every client. Rows:

- ``cat_file 4 KiB``: one sync ``cat_file`` after another over ``--count`` objects; the
  best of ``--rounds`` passes, in microseconds per call. The direct row is
  ``store.read(path)``; issue 13 targets the adapter at <= 1.3x of it, and faster than
  s3fs and obstore's ``FsspecStore``.
- ``cat 256 x 4 KiB``: one ``cat`` of 256 paths (each client's concurrent batch path).
- ``get_file``: one object of ``--big-mib`` MiB to a local file, in MB/s (best of
  ``--big-rounds``).
- memory: the adapter's fixed cost over the memory service, against ``store.read``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KiB = 1024
MiB = 1 << 20


def _per_call_us(fn: Callable[[str], Any], paths: list[str], rounds: int) -> float:
    """Return the best pass's mean microseconds per call of ``fn`` over ``paths``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        best = min(best, (time.perf_counter() - start) / len(paths))
    return best * 1e6


def _interleaved(
    cases: list[tuple[str, Callable[[str], Any], list[str]]], rounds: int
) -> dict[str, float]:
    """Return each case's best pass, the cases taking turns so load hits them alike."""
    best = {name: float("inf") for name, _, _ in cases}
    for _ in range(rounds):
        for name, fn, paths in cases:
            best[name] = min(best[name], _per_call_us(fn, paths, 1))
    return best


def _best_seconds(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _row(name: str, value: float, unit: str, base: float | None = None) -> None:
    ratio = f"{value / base:6.2f}x" if base else ""
    print(f"| {name:<40} | {value:10.1f} {unit:<6} | {ratio:>8} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--big-rounds", type=int, default=3)
    args = parser.parse_args()

    import boto3
    import s3fs
    from fsspec.asyn import sync
    from obstore.fsspec import FsspecStore

    import storager
    from storager.fsspec import StoragerFileSystem
    from tests.servers.seaweedfs import start_seaweedfs

    server = start_seaweedfs()
    try:
        bucket = f"fsspec-bench-{os.getpid()}"
        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        ).create_bucket(Bucket=bucket)
        store = storager.open(
            f"s3://{bucket}/?endpoint={server.endpoint}&location={server.region}",
            credential=f"hmac:{server.access_key}:{server.secret_key}",
        )
        ours = StoragerFileSystem(store)
        theirs = s3fs.S3FileSystem(
            key=server.access_key,
            secret=server.secret_key,
            endpoint_url=server.endpoint,
            client_kwargs={"region_name": server.region},
            skip_instance_cache=True,
        )
        obstore_fs = FsspecStore(
            "s3",
            config={
                "endpoint": server.endpoint,
                "access_key_id": server.access_key,
                "secret_access_key": server.secret_key,
                "region": server.region,
                "virtual_hosted_style_request": False,
            },
            client_options={"allow_http": True},
            skip_instance_cache=True,
        )
        data = os.urandom(4 * KiB)
        paths = [f"small/{i:05d}" for i in range(max(args.count, 256))]
        for path in paths:
            store.write(path, data)
        small = paths[: args.count]
        batch = paths[:256]
        full = [f"{bucket}/{p}" for p in small]

        print(f"SeaweedFS {server.endpoint}, {args.count} objects of 4 KiB, best of {args.rounds}")
        print("| case | value | vs direct |\n|---|---|---|")
        cases: list[tuple[str, Callable[[str], Any], list[str]]] = [
            ("store.read (direct)", store.read, small),
            ("StoragerFileSystem", ours.cat_file, small),
            (
                "StoragerFileSystem via its loop and view",
                lambda p: sync(ours.loop, ours._cat_file, p),
                small,
            ),
            ("s3fs", theirs.cat_file, full),
            ("obstore FsspecStore", obstore_fs.cat_file, full),
        ]
        best = _interleaved(cases, args.rounds)
        direct = best["store.read (direct)"]
        for name, _, _ in cases:
            _row(f"cat_file 4 KiB: {name}", best[name], "us", direct)

        full_batch = [f"{bucket}/{p}" for p in batch]
        for name, fn in [
            ("cat 256 x 4 KiB: StoragerFileSystem", lambda: ours.cat(batch)),
            ("cat 256 x 4 KiB: s3fs", lambda: theirs.cat(full_batch)),
            ("cat 256 x 4 KiB: obstore FsspecStore", lambda: obstore_fs.cat(full_batch)),
        ]:
            _row(name, _best_seconds(fn, args.rounds) * 1e3, "ms")

        big = f"big/{args.big_mib}.bin"
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "source.bin"
            with source.open("wb") as out:
                for _ in range(args.big_mib):
                    out.write(os.urandom(MiB))
            ours.put_file(str(source), big)
            local = str(Path(tmp) / "got.bin")
            size = args.big_mib * MiB
            for name, fn in [
                ("get_file: StoragerFileSystem", lambda: ours.get_file(big, local)),
                ("get_file: s3fs", lambda: theirs.get_file(f"{bucket}/{big}", local)),
                (
                    "get_file: obstore FsspecStore",
                    lambda: obstore_fs.get_file(f"{bucket}/{big}", local),
                ),
            ]:
                seconds = _best_seconds(fn, args.big_rounds)
                assert os.path.getsize(local) == size
                _row(f"{name} ({args.big_mib} MiB)", size / seconds / 1e6, "MB/s")
        store.close()
    finally:
        server.stop()

    memory = storager.open("memory://")
    memory_fs = StoragerFileSystem(memory)
    for path in small:
        memory.write(path, data)
    cases = [
        ("store.read (direct)", memory.read, small),
        ("StoragerFileSystem", memory_fs.cat_file, small),
        (
            "StoragerFileSystem via its loop and view",
            lambda p: sync(memory_fs.loop, memory_fs._cat_file, p),
            small,
        ),
    ]
    best = _interleaved(cases, args.rounds * 4)
    print()
    for name, _, _ in cases:
        _row(f"memory cat_file: {name}", best[name], "us", best["store.read (direct)"])


if __name__ == "__main__":
    main()
