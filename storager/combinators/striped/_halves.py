"""A rebuild into the caller's buffer coded in two halves at once, on two CPUs.

When a read into the caller's buffer (``_in_place``) rebuilds missing data fragments,
its reads are done and the second CPU is free; ISA-L codes with the GIL released, so
the fragments' byte columns can be cut in two and coded on two threads.
"""

from __future__ import annotations

import mmap

from storager.combinators.striped._codecs import Buffer, Codec
from storager.combinators.striped._core import Core
from storager.combinators.striped._fragments import Lease

__all__ = ["SPLIT_REBUILD", "rebuild_in_halves"]

#: Fragments at least this long are rebuilt in two halves at once (``rebuild_in_halves``).
SPLIT_REBUILD = 1 << 20


def rebuild_in_halves(
    core: Core,
    codec: Codec,
    sources: dict[int, bytes | memoryview],
    outputs: dict[int, memoryview],
) -> bool:
    """``codec.rebuild_into``, the fragments' byte columns cut in two: the second half
    on the thread kept for such work (``Core.beside``) while this thread codes the
    first (with two CPUs or more).

    A rebuild is CPU work on one core (ISA-L lets go of the GIL), and by the time it
    runs the stripe's reads are done: the other core is free. In two halves, a
    degraded read over fs backends ran 6-12% faster (two runs of 25 interleaved
    rounds, ``benchmarks/README.md``, "Session 11"). The helper writes into the
    caller's buffer under a lease taken back before this returns, whatever happens
    meanwhile (as ``run_all``'s reads do); a half the helper has not started once
    the first is done (it codes another reader's) is coded here instead, so no reader
    waits behind another's. Only codecs that code off the GIL are split.
    """
    length = min(len(v) for v in outputs.values())
    half = (length // 2) & ~(mmap.PAGESIZE - 1)  # the cut page-aligned, as the buffers are
    if (
        length < SPLIT_REBUILD
        or not half
        or core.lanes < 2
        or not codec.codes_off_the_gil
        or any(len(memoryview(b)) != length for b in sources.values())
    ):
        return codec.rebuild_into(sources, outputs)

    def cut(lo: int, hi: int) -> tuple[dict[int, Buffer], dict[int, memoryview]]:
        ins: dict[int, Buffer] = {i: memoryview(b).cast("B")[lo:hi] for i, b in sources.items()}
        return ins, {i: v[lo:hi] for i, v in outputs.items()}

    lease = Lease()

    def second() -> bool:
        with lease.hold():  # taken back before it started: codes nothing
            return codec.rebuild_into(*cut(half, length))

    try:  # from here on, whatever happens, the lease is taken back before we return
        try:
            future = core.beside(second)
        except RuntimeError:  # the store is closing: no helper, this thread does it all
            return codec.rebuild_into(sources, outputs)
        first = codec.rebuild_into(*cut(0, half))
        if future.cancel():  # the helper is busy with another reader's half: ours, then
            return codec.rebuild_into(*cut(half, length)) and first
        return future.result() and first
    finally:
        lease.revoke()  # waits out the second half if it is still coding
