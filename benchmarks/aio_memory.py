"""Async over memory against the sync call: what the async view costs per operation.

Rows: a 4 KiB write and read through ``MemoryStorage`` directly, through its async view
(inline: the memory service's calls cannot block, so no thread hop), and through a
threaded view (every call hopped to the view's pool, as for fs or s3 today). The async
rows run 256 calls with ``asyncio.gather`` per round, the sync rows a plain loop; each
row prints microseconds per call (best of 5 rounds). The "in turn" rows await the
calls one after another in one task, as one request handler does. The target of issue
12 is async over memory at most 2x the sync call.

Run ``python benchmarks/aio_memory.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from storager.aio import async_view
from storager.services.memory import MemoryStorage

CALLS = 256
DATA = b"x" * 4096


def _best(run: Callable[[], None], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / CALLS * 1e6


def _gather(make: Callable[[int], Awaitable[object]]) -> Callable[[], None]:
    async def main() -> None:
        await asyncio.gather(*(make(i) for i in range(CALLS)))

    return lambda: asyncio.run(main())


def _in_turn(make: Callable[[int], Awaitable[object]]) -> Callable[[], None]:
    """Await the calls one after another in one task (no task per call)."""

    async def main() -> None:
        for i in range(CALLS):
            await make(i)

    return lambda: asyncio.run(main())


def main() -> None:
    store = MemoryStorage()
    inline = async_view(store)
    threaded = async_view(store, inline=False)
    rows = {
        "sync write": lambda: [store.write(f"k{i}", DATA) for i in range(CALLS)] and None,
        "sync read": lambda: [store.read(f"k{i}") for i in range(CALLS)] and None,
        "async inline write": _gather(lambda i: inline.write(f"k{i}", DATA)),
        "async inline read": _gather(lambda i: inline.read(f"k{i}")),
        "async inline write, in turn": _in_turn(lambda i: inline.write(f"k{i}", DATA)),
        "async inline read, in turn": _in_turn(lambda i: inline.read(f"k{i}")),
        "async threaded write": _gather(lambda i: threaded.write(f"k{i}", DATA)),
        "async threaded read": _gather(lambda i: threaded.read(f"k{i}")),
    }
    for name, run in rows.items():
        print(f"{name:24} {_best(run):8.1f} us/call")


if __name__ == "__main__":
    main()
