"""256 concurrent 4 KiB PUTs and GETs with asyncio.gather: storager's native async s3 store
against obstore's ``put_async``/``get_async``, on the same SeaweedFS.

Run from the repository root: ``python benchmarks/aio_s3.py [--rounds 9]``. The script
starts SeaweedFS itself (``tests/servers/seaweedfs.py``). Everything runs in one event
loop, after a warm-up batch of each (connections made, code paths warm); then each round
runs one batch of each client in turn, so both see the same machine load. A row gives
the median rate (requests per second) of each client and the median of the per-round
ratios storager/obstore (issue 12 targets >= 1.0), with the load average at the end.

Both clients may keep ``--connections`` connections (storager: its per-loop limit,
``max_connections``; obstore: ``pool_max_idle_per_host``, hyper opens more on demand).
``--view`` adds storager's threaded async view (the path every s3 store took before the
native one) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNT = 256
DATA = os.urandom(4096)

Batch = Callable[[int], Awaitable[Any]]


async def _rate(make: Batch) -> tuple[float, float]:
    """Run one batch; return its rate (requests/s) and the process's CPU µs per request."""
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(make(i) for i in range(COUNT)))
    used = (time.process_time() - cpu) / COUNT * 1e6
    return COUNT / (time.perf_counter() - start), used


async def _compare(rows: dict[str, dict[str, Batch]], rounds: int) -> None:
    for clients in rows.values():
        for make in clients.values():
            await _rate(make)  # warm-up: connections, caches
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for row, clients in rows.items():
            for name, make in clients.items():
                rate, cpu = await _rate(make)
                rates.setdefault((row, name), []).append(rate)
                cpus.setdefault((row, name), []).append(cpu)
    names = list(next(iter(rows.values())))
    print(f"{COUNT} concurrent 4 KiB requests, {rounds} interleaved rounds, medians")
    print("requests/s, then the client's CPU (this process, all threads) in µs per request")
    header = " ".join(f"{n:>10}" for n in names)
    print(f"{'':4} {header} {'ratio':>6} {'min-max':>11} | {header}")
    for row in rows:
        ours, theirs = rates[(row, "storager")], rates[(row, "obstore")]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        cells = " ".join(f"{statistics.median(rates[(row, n)]):10.0f}" for n in names)
        costs = " ".join(f"{statistics.median(cpus[(row, n)]):10.0f}" for n in names)
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(f"{row:4} {cells} {statistics.median(ratios):6.2f} {spread:>11} | {costs}")
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--view", action="store_true", help="add the threaded async view")
    args = parser.parse_args()

    import boto3
    import obstore
    from obstore.store import S3Store

    import storager
    from storager.aio import async_view
    from storager.services.s3._async import S3Async
    from tests.servers.seaweedfs import start_seaweedfs

    server = start_seaweedfs()
    try:
        bucket = f"aio-{os.getpid()}"
        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        ).create_bucket(Bucket=bucket)
        sync = storager.open(
            f"s3://{bucket}/?endpoint={server.endpoint}&location={server.region}"
            f"&max_connections={args.connections}",
            credential=f"hmac:{server.access_key}:{server.secret_key}",
        )
        ours = async_view(sync)
        assert isinstance(ours, S3Async), "the s3 store's async twin is not the native one"
        view = async_view(sync, native=False, threads=args.connections)
        theirs = S3Store(
            bucket,
            endpoint=server.endpoint,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            region=server.region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "pool_max_idle_per_host": str(args.connections)},
        )

        async def ob_get(i: int) -> bytes:
            result = await obstore.get_async(theirs, f"ob/{i}")
            return bytes(await result.bytes_async())

        rows: dict[str, dict[str, Batch]] = {
            "PUT": {
                "storager": lambda i: ours.write(f"st/{i}", DATA),
                "obstore": lambda i: obstore.put_async(theirs, f"ob/{i}", DATA),
            },
            "GET": {"storager": lambda i: ours.read(f"st/{i}"), "obstore": ob_get},
        }
        if args.view:
            rows["PUT"]["view"] = lambda i: view.write(f"vw/{i}", DATA)
            rows["GET"]["view"] = lambda i: view.read(f"vw/{i}")

        async def run() -> None:
            try:
                await _compare(rows, args.rounds)
            finally:
                await ours.close()
                await view.close()

        asyncio.run(run())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
