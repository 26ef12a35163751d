"""Run many coroutines with at most a few in flight: the batch calls' runner.

fsspec's own runner starts a whole chunk (1,280 calls by default) at once and waits for the
chunk's slowest: every call then queues on the store's connection pool, and the cost of
waiting grows with the chunk. Here a fixed number of workers each take the next call when
their last one is done, so the pool stays busy and nothing queues behind it. Measured on
redis (``rm`` of a list of 3,000 names, the machine shared): fsspec's runner took 2.05 s
with its default chunk and 0.58-0.70 s with a chunk of 8, 32 or 128; this one takes
0.28 s at each of those limits (``cat_ranges`` of the 3,000: 0.62 s, 0.27-0.40 s and
0.14-0.16 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

#: Calls in flight when neither the call nor the filesystem names a ``batch_size``.
DEFAULT_IN_FLIGHT = 32


async def run_bounded(
    coros: Sequence[Coroutine[Any, Any, Any]],
    limit: int,
    *,
    return_exceptions: bool = False,
) -> list[Any]:
    """Await ``coros`` in order of their start, at most ``limit`` at a time.

    The results come back in the order of ``coros``. Unless ``return_exceptions``, the first
    error stops the start of further calls, lets those in flight finish (a delete half done
    is not cancelled into an unknown state) and is then raised as it is; the calls never
    started are closed, so no "never awaited" warning escapes.
    """
    results: list[Any] = [None] * len(coros)
    if not coros:
        return results
    pending = iter(range(len(coros)))
    errors: list[BaseException] = []

    async def worker() -> None:
        for index in pending:
            if errors:
                return
            try:
                results[index] = await coros[index]
            except Exception as exc:
                if not return_exceptions:
                    errors.append(exc)
                    return
                results[index] = exc

    workers = [asyncio.ensure_future(worker()) for _ in range(min(max(limit, 1), len(coros)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()  # only when the caller itself was cancelled
        for coro in coros:
            coro.close()  # a no-op for those that ran
    if errors:
        raise errors[0]
    return results
