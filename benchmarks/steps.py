"""What writing Failover's loop once (a generator of steps, two drivers) costs per call.

Failover's ``_around`` is ``failover_steps`` (storager/combinators/_failover_policy.py) run by
``drive`` in the sync Failover and ``drive_async`` in AsyncFailover. The baseline here
is the loop as it was written twice before (copied below, as ``_Inline*``). Rows: a
4 KiB read through Failover(memory, memory), AsyncFailover(memory.aio, memory.aio) and
Failover(fs, memory) (a store that does I/O),
each form timed in interleaved rounds in one run (the machine is shared: compare the
ratio of a row pair, not absolute numbers), best round of each; the ratio is
steps / inline. The async rows await the reads one after another in one task.

Run ``python benchmarks/steps.py``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

from storager import Storager
from storager.aio.combinators import AsyncFailover
from storager.aio.combinators._base import Call
from storager.combinators import Failover
from storager.combinators._base import call_child, single_attempt
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

T = TypeVar("T")
CALLS = 20_000
ROUNDS = 15


class _InlineFailover(Failover):
    """The sync loop as written before the steps (the baseline)."""

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        board = self._board
        if board.probe_due() and self._primary_healthy():
            board.switch(0, "the primary's health probe passed")
        first, last = board.span(single_attempt.get() != "")
        for index in range(first, last):
            try:
                result = call_child(self._stores[index], op, path, fn)
            except Exception as exc:
                board.failed(op, path, index, last, exc, self._switch_on)
                continue
            board.served(op, first, index)
            return result
        raise AssertionError("unreachable")


class _InlineAsyncFailover(AsyncFailover):
    """The async loop as written before the steps (the baseline)."""

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        board = self._board
        if board.probe_due() and await self._primary_healthy():
            board.switch(0, "the primary's health probe passed")
        first, last = board.span(single_attempt.get() != "")
        for index in range(first, last):
            try:
                result = await fn(self._stores[index])
            except Exception as exc:
                board.failed(op, path, index, last, exc, self._switch_on)
                continue
            board.served(op, first, index)
            return result
        raise AssertionError("unreachable")


def _sync_round(store: Any) -> float:
    read = store.read
    start = time.perf_counter()
    for _ in range(CALLS):
        read("k")
    return (time.perf_counter() - start) / CALLS * 1e6


def _async_round(store: Any) -> float:
    async def main() -> float:
        read = store.read
        start = time.perf_counter()
        for _ in range(CALLS):
            await read("k")
        return (time.perf_counter() - start) / CALLS * 1e6

    return asyncio.run(main())


def _stores() -> tuple[MemoryStorage, MemoryStorage]:
    primary, backup = MemoryStorage(), MemoryStorage()
    for store in (primary, backup):
        store.write("k", b"x" * 4096)
    return primary, backup


def main() -> None:
    primary, backup = _stores()
    with tempfile.TemporaryDirectory() as root:
        fs = FsStorage(root=root)
        fs.write("k", b"x" * 4096)
        forms = {
            "sync inline": (_InlineFailover(primary, backup), _sync_round),
            "sync steps": (Failover(primary, backup), _sync_round),
            "async inline": (_InlineAsyncFailover(primary.aio, backup.aio), _async_round),
            "async steps": (AsyncFailover(primary.aio, backup.aio), _async_round),
            "fs sync inline": (_InlineFailover(fs, backup), _sync_round),
            "fs sync steps": (Failover(fs, backup), _sync_round),
        }
        _run(forms)
        fs.close()


def _run(forms: dict[str, tuple[Any, Callable[[Any], float]]]) -> None:
    best = dict.fromkeys(forms, float("inf"))
    for _ in range(ROUNDS):  # interleaved: each round times every form once
        for name, (store, timed) in forms.items():
            best[name] = min(best[name], timed(store))
    print(f"load average {os.getloadavg()[0]:.1f}; {CALLS} reads per round, best of {ROUNDS}")
    for name, us in best.items():
        print(f"{name:<15} {us:6.2f} us/read")
    for world in ("sync", "async", "fs sync"):
        ratio = best[f"{world} steps"] / best[f"{world} inline"]
        print(f"{world}: steps / inline = {ratio:.3f}")


if __name__ == "__main__":
    main()
