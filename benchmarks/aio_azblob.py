"""256 concurrent 4 KiB PUTs and GETs on Azurite: azblob's native async store against the
threaded view of the same store (every call hopped to the view's pool and then to adlfs's
loop thread).

Run from the repository root: ``python benchmarks/aio_azblob.py [--rounds 5]``. The script
starts Azurite itself (``tests/servers/azurite.py``). Each row is the best of ``--rounds``
batches, in requests per second: all batches in one event loop (after a warm-up batch),
as a server runs; then each batch in its own ``asyncio.run``, where the native rows
include making and closing that loop's client and its connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
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


def _best_rate(make: Callable[[int], Awaitable[Any]], rounds: int, *, one_loop: bool) -> float:
    """Return the best batch's rate: all batches in one loop, or each in its own."""
    if one_loop:

        async def all_rounds() -> float:
            await _batch(make)  # warm up: this loop's client and its connections
            return min([await _batch(make) for _ in range(rounds)])

        return COUNT / asyncio.run(all_rounds())
    return COUNT / min(asyncio.run(_batch(make)) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from azure.storage.blob import BlobServiceClient

    from storager.aio import async_view
    from storager.services.azblob import AzblobStorage
    from tests.servers.azurite import start_azurite

    server = start_azurite()
    try:
        container = f"bench-{secrets.token_hex(4)}"
        with BlobServiceClient.from_connection_string(server.connection_string) as client:
            client.create_container(container)
        store = AzblobStorage(
            name=container,
            endpoint=server.endpoint,
            credential=f"shared_key:{server.account_name}:{server.account_key}",
        )
        native = store.aio
        threaded = async_view(store, native=False, threads=16)
        rows = {
            "PUT": (
                lambda i: native.write(f"n{i}", DATA),
                lambda i: threaded.write(f"t{i}", DATA),
            ),
            "GET": (lambda i: native.read(f"n{i}"), lambda i: threaded.read(f"t{i}")),
        }
        print(f"{'':16} {'native req/s':>13} {'threaded req/s':>15} {'ratio':>6}")
        for one_loop in (True, False):
            loops = "one loop" if one_loop else "run per batch"
            for name, (make_native, make_threaded) in rows.items():
                n = _best_rate(make_native, args.rounds, one_loop=one_loop)
                t = _best_rate(make_threaded, args.rounds, one_loop=one_loop)
                print(f"{name} {loops:13} {n:13.0f} {t:15.0f} {n / t:6.2f}")
        asyncio.run(threaded.close())
        asyncio.run(native.close())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
