"""256 concurrent 4 KiB PUTs and GETs with asyncio.gather: storager's async store against
obstore's ``put_async``/``get_async``, on the same SeaweedFS.

Run from the repository root: ``python benchmarks/aio_s3.py [--rounds 5] [--threads 16]``.
The script starts SeaweedFS itself (``tests/servers/seaweedfs.py``). Each row is the best
of ``--rounds`` batches, in requests per second; ``ratio`` is storager's rate over
obstore's (issue 12 targets >= 1.0). storager's async store is today the async view of
the sync s3 service: each request runs on the view's pool of ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COUNT = 256
DATA = os.urandom(4096)


async def _batch(make: Callable[[int], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(make(i) for i in range(COUNT)))
    return time.perf_counter() - start


def _best_rate(make: Callable[[int], Awaitable[Any]], rounds: int) -> float:
    best = min(asyncio.run(_batch(make)) for _ in range(rounds))
    return COUNT / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    import boto3
    import obstore
    from obstore.store import S3Store

    import storager
    from storager.aio import async_view
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
            f"s3://{bucket}/?endpoint={server.endpoint}&location={server.region}",
            credential=f"hmac:{server.access_key}:{server.secret_key}",
        )
        ours = async_view(sync, threads=args.threads)
        theirs = S3Store(
            bucket,
            endpoint=server.endpoint,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            region=server.region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
        )

        async def ob_get(i: int) -> bytes:
            result = await obstore.get_async(theirs, f"ob/{i}")
            return bytes(await result.bytes_async())

        rows = {
            "PUT": (
                lambda i: ours.write(f"st/{i}", DATA),
                lambda i: obstore.put_async(theirs, f"ob/{i}", DATA),
            ),
            "GET": (lambda i: ours.read(f"st/{i}"), ob_get),
        }
        print(f"{COUNT} concurrent 4 KiB requests, best of {args.rounds}, requests/s")
        print(f"{'':4} {'storager':>10} {'obstore':>10} {'ratio':>6}")
        for name, (mine, other) in rows.items():
            rate_ours = _best_rate(mine, args.rounds)
            rate_theirs = _best_rate(other, args.rounds)
            print(f"{name:4} {rate_ours:10.0f} {rate_theirs:10.0f} {rate_ours / rate_theirs:6.2f}")
        sync.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
