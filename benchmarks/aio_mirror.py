"""AsyncMirror (native: targets as tasks on the loop) against async_mirror (the sync
Mirror bridged onto a thread pool), over two memory targets and over two fs targets.

Each round gathers 256 writes of 4 KiB (parallel mode) and then 256 reads, on one
loop; every form runs once per round, rounds interleaved, best of 7. Prints µs per
call and the native / bridged ratio (below 1: native is cheaper). The machine is
shared: compare ratios, and note the load printed with them.

Run ``python benchmarks/aio_mirror.py``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any

from storager.aio import async_view
from storager.aio.combinators import AsyncMirror, async_mirror
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

CALLS = 256
ROUNDS = 7
DATA = b"x" * 4096


def _round(store: Any) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        start = time.perf_counter()
        await asyncio.gather(*(store.write(f"k{i}", DATA) for i in range(CALLS)))
        wrote = time.perf_counter() - start
        start = time.perf_counter()
        await asyncio.gather(*(store.read(f"k{i}") for i in range(CALLS)))
        read = time.perf_counter() - start
        return wrote / CALLS * 1e6, read / CALLS * 1e6

    return asyncio.run(main())


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        mem = [MemoryStorage(), MemoryStorage()]
        fs = [FsStorage(root=os.path.join(root, n)) for n in ("a", "b")]
        for store in fs:
            os.makedirs(store.metadata().work_dir, exist_ok=True)
        forms = {
            "memory native": AsyncMirror(
                {"a": async_view(mem[0]), "b": async_view(mem[1])}, write="parallel"
            ),
            "memory bridged": async_mirror(
                {"a": async_view(mem[0]), "b": async_view(mem[1])}, write="parallel"
            ),
            "fs native": AsyncMirror(
                {"a": async_view(fs[0]), "b": async_view(fs[1])}, write="parallel"
            ),
            "fs bridged": async_mirror(
                {"a": async_view(fs[0]), "b": async_view(fs[1])}, write="parallel"
            ),
        }
        best = {name: [float("inf"), float("inf")] for name in forms}
        for _ in range(ROUNDS):
            for name, store in forms.items():
                wrote, read = _round(store)
                best[name] = [min(best[name][0], wrote), min(best[name][1], read)]
        print(f"load average {os.getloadavg()[0]:.1f}; {CALLS} gathered calls, best of {ROUNDS}")
        for name, (wrote, read) in best.items():
            print(f"{name:<15} write {wrote:7.1f} us  read {read:7.1f} us")
        for kind in ("memory", "fs"):
            native, bridged = best[f"{kind} native"], best[f"{kind} bridged"]
            print(
                f"{kind}: native / bridged  write {native[0] / bridged[0]:.2f}"
                f"  read {native[1] / bridged[1]:.2f}"
            )
        for store in forms.values():
            asyncio.run(store.close())


if __name__ == "__main__":
    main()
