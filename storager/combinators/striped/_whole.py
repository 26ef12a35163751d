"""Requests of whole, healthy data fragments on fast backends: planned in a few lines.

A sequential reader's requests over backends that answer at memory speed
(``Core.fast``) mostly cover whole data fragments, none missing, none padded. For
those, the general plan (``_in_place.read_in_place``: the spare stripe, parity reads
beside, rebuilds, the spans served) is bookkeeping that only delays handing the reads
to the pool and starting this thread's own: measured, planning such requests here
made a healthy read over fs backends 1-10% faster in six of eight interleaved runs, at
3-8% less CPU (``benchmarks/README.md``, "Session 12" under Striped). The reads
themselves run as every read into the caller's buffer does (``_in_place._run_all``:
lanes, leases, each hedged).

A request of any other shape is left to the general path untouched. One whose reads
did not all succeed is left to it too, with the backends that failed or were late
named, so that it treats them as down (reading parity beside the data at once rather
than waiting for them again); the damage found is reported here, where it was met.
"""

from __future__ import annotations

from collections.abc import Container

from storager.combinators.striped._core import Core, Damage
from storager.combinators.striped._in_place import _Direct, _run_all, _StripeRead
from storager.combinators.striped._manifest import Manifest, codec_of

__all__ = ["read_whole"]


def read_whole(
    core: Core,
    path: str,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    skip: Container[int],
) -> tuple[bool, frozenset[str]]:
    """Fill ``view`` (object bytes from ``start``) from whole data fragments, if it can.

    ``indexes``: the stripes the request overlaps; one in ``skip`` (the caller holds
    it already) leaves the request to the general path.

    Returns:
        Whether all of ``view`` was filled, every fragment checked; and, when it was
        not, the backends whose reads failed or were late (for ``read_in_place``'s
        ``avoid``). Nothing filled counts: the general path fills ``view`` again.
    """
    reads = _whole_reads(core, manifest, view, start, indexes, skip)
    if reads is None:
        return False, frozenset()
    _run_all(core, reads)
    failed = [direct for direct in reads if direct.index not in direct.read.good]
    if not failed:
        return True, frozenset()
    problems = {p for direct in failed for p in direct.read.problems}
    if problems:
        core.on_damage(Damage(path, manifest.generation, sorted(problems)))
    # Not a read given up unstarted, queued behind a late one: its backend did nothing.
    unstarted = {id(d) for d in failed if d.given_up and d.started is None}
    return False, frozenset(d.fragment.backend for d in failed if id(d) not in unstarted)


def _whole_reads(
    core: Core,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    skip: Container[int],
) -> list[_Direct] | None:
    """Return one read per data fragment ``view`` covers, if it covers only whole,
    unpadded data fragments on fast backends that are up; None otherwise."""
    codec = codec_of(manifest.codec)
    end = start + len(view)
    reads: list[_Direct] = []
    for index in indexes:
        stripe = manifest.stripes[index]
        block = codec.block(stripe.length)
        if index in skip or not block:
            return None
        lo = max(start, stripe.offset) - stripe.offset
        hi = min(end, stripe.offset + stripe.length) - stripe.offset
        if lo % block or (hi % block and hi != stripe.length):
            return None  # a fragment only partly asked for
        read = _StripeRead(stripe, block)
        for i in range(lo // block, -(-hi // block)):
            fragment = stripe.fragments[i]
            holds = min(block, stripe.length - i * block)
            if (
                fragment is None
                or fragment.length != holds  # a padded last block
                or fragment.backend not in core.fast
                or not core.health.is_up(fragment.backend)
            ):
                return None
            at = stripe.offset + i * block - start
            read.views[i] = view[at : at + holds]
            reads.append(_Direct(fragment, read.views[i], read, i))
    return reads or None
