"""Reads that land in the caller's buffer: whole data fragments, and rebuilt ones.

Where a codec's data fragments hold the object's bytes as they are
(``Codec.block``: ISA-L's Reed-Solomon, replicas, stripes), a reader's ``readinto``
reads each data fragment its buffer covers whole straight into the buffer, in
parallel, and checks it there against its digest. A stripe the buffer covers whole
whose data fragments could not all be read (a backend down, failing, a fragment
damaged) has the missing ones rebuilt into the buffer as well, where the codec can
(``Codec.rebuild_into``): from the data fragments already in place and the fewest
parity fragments, each checked, and each rebuilt fragment checked against the digest
the writer recorded. Whatever this cannot serve is left to the caller, which
rebuilds the stripe the general way (``_reader.fetch_stripe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from functools import partial

from storager.combinators.striped._codecs import Codec
from storager.combinators.striped._core import Core, Damage
from storager.combinators.striped._digests import matches
from storager.combinators.striped._fragments import (
    Hold,
    Lease,
    Revoked,
    fetch_fragment,
    fetch_fragment_into,
    problem,
)
from storager.combinators.striped._manifest import Fragment, Manifest, Stripe, codec_of

__all__ = ["read_in_place"]


@dataclass(slots=True)
class _StripeRead:
    """One stripe's part of a request: which data fragments land where."""

    stripe: Stripe
    block: int
    #: Data fragment index -> the slice of the caller's buffer it fills.
    views: dict[int, memoryview] = field(default_factory=dict)
    #: Data fragments read and checked in place.
    good: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    #: Whether the request covers the whole stripe, every data fragment unpadded.
    whole: bool = False


def read_in_place(
    core: Core,
    path: str,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    *,
    skip: Container[int] = (),
) -> list[tuple[int, int]]:
    """Fill what can be filled of ``view`` (object bytes from ``start``) from fragments.

    ``indexes``: the stripes the request overlaps. Stripes in ``skip`` are left
    alone (the caller has them already). Returns the object spans ``(lo, hi)`` now
    in ``view``, sorted; every byte of them checked.
    """
    codec = codec_of(manifest.codec)
    plan = _plan(core, codec, manifest, view, start, indexes, skip)
    reads: list[tuple[Fragment, memoryview, _StripeRead, int]] = []
    for s in plan:
        for i, v in s.views.items():
            fragment = s.stripe.fragments[i]
            if fragment is not None and core.health.is_up(fragment.backend):
                reads.append((fragment, v, s, i))
    if not reads:
        return []
    _run_all(core, reads)
    served: list[tuple[int, int]] = []
    for s in plan:
        missing = {i: v for i, v in s.views.items() if i not in s.good}
        if missing and s.whole and _rebuild_in_place(core, codec, s, missing):
            s.good.update(missing)
        if s.problems and s.good == set(s.views):  # damage met, but all of it served
            core.on_damage(Damage(path, manifest.generation, s.problems))
        lo0 = s.stripe.offset
        served += [(lo0 + i * s.block, lo0 + i * s.block + len(s.views[i])) for i in s.good]
    served.sort()
    return served


def _plan(
    core: Core,
    codec: Codec,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    skip: Container[int],
) -> list[_StripeRead]:
    end = start + len(view)
    plan: list[_StripeRead] = []
    for index in indexes:
        stripe = manifest.stripes[index]
        if stripe.offset + stripe.length <= start or stripe.offset >= end or index in skip:
            continue
        block = codec.block(stripe.length)
        if not block:
            continue
        read = _StripeRead(stripe, block)
        unpadded = True
        for i in range(codec.data):
            lo = stripe.offset + i * block
            holds = min(block, stripe.offset + stripe.length - lo)
            if holds <= 0:
                break
            fragment = stripe.fragments[i]
            if fragment is not None and fragment.length != holds:
                unpadded = False  # a padded last block: the stripe is read the general way
                continue
            if start <= lo and lo + holds <= end:
                read.views[i] = view[lo - start : lo - start + holds]
        read.whole = unpadded and len(read.views) == codec.data
        if read.views:
            plan.append(read)
    return plan


def _run_all(core: Core, reads: list[tuple[Fragment, memoryview, _StripeRead, int]]) -> None:
    """Run every read into the caller's buffer, within ``hedge_after``.

    The pool takes the reads; the buffer is lent to its threads (``Lease``) and taken
    back before this returns, even on an error or an interrupt, so no thread writes
    into it later. A read without an answer by ``hedge_after`` is given up (its span
    is served from the stripe, which asks other fragments). This thread reads one
    fragment itself (a woken pool thread costs ~0.1 ms here, a quarter of a 4 MiB
    fragment: measured 0.74x of the fs store against 0.45x) where it cannot hang the
    caller for long: without ``hedge_after``, or from a backend whose last read here
    took under a tenth of it (``Core.quick``; a read of its own cannot be given up).
    """
    own = _own_read(core, reads)
    lease = Lease()
    futures: dict[Future[None], tuple[_StripeRead, int]] = {}
    try:
        for n, (fragment, view, s, i) in enumerate(reads):
            if n != own:
                read = partial(_timed, core, fragment, view, lease.hold)
                futures[core.io(read)] = (s, i)
        if own is not None:
            fragment, view, s, i = reads[own]
            _settle(s, i, partial(_timed, core, fragment, view, None))
        wait(futures, timeout=core.hedge_after)
    finally:
        lease.revoke()
    for future, (s, i) in futures.items():
        if future.done():
            _settle(s, i, future.result)


def _own_read(core: Core, reads: list[tuple[Fragment, memoryview, _StripeRead, int]]) -> int | None:
    """Return which read this thread may do itself (see ``_run_all``), if any."""
    if core.hedge_after is None:
        return 0
    for n, (fragment, *_) in enumerate(reads):
        if fragment.backend in core.quick:
            return n
    return None


def _timed(core: Core, fragment: Fragment, view: memoryview, hold: Hold | None) -> None:
    """Read one fragment in place, noting whether its backend answered quickly."""
    began = time.monotonic()
    try:
        fetch_fragment_into(core, fragment, view, hold)
    finally:
        took = time.monotonic() - began
        if core.hedge_after is not None and took < core.hedge_after / 10:
            core.quick.add(fragment.backend)
        else:
            core.quick.discard(fragment.backend)


def _settle(read: _StripeRead, index: int, outcome: Callable[[], None]) -> None:
    try:
        outcome()
    except Revoked:
        pass  # given up as slow: no damage, served from the stripe
    except Exception as exc:
        fragment = read.stripe.fragments[index]
        assert fragment is not None
        read.problems.append(problem(index, fragment, exc))
    else:
        read.good.add(index)


def _rebuild_in_place(
    core: Core, codec: Codec, read: _StripeRead, missing: dict[int, memoryview]
) -> bool:
    """Rebuild ``missing`` data fragments into their places; whether it could.

    Takes the fewest other fragments (up backends first), each checked; checks each
    rebuilt fragment against the digest the writer recorded.
    """
    stripe = read.stripe
    sources: dict[int, bytes | memoryview] = {i: read.views[i] for i in read.good}
    for i in missing:
        if stripe.fragments[i] is None:
            read.problems.append(f"fragment {i}: never written")
    others = [(i, f) for i, f in enumerate(stripe.fragments) if i >= codec.data and f is not None]
    others.sort(key=lambda item: (not core.health.is_up(item[1].backend), item[0]))
    pending: dict[Future[bytes], tuple[int, Fragment]] = {}
    while len(sources) < codec.data and (others or pending):
        while others and len(sources) + len(pending) < codec.data:
            i, fragment = others.pop(0)
            pending[core.io(partial(fetch_fragment, core, fragment))] = (i, fragment)
        done, _ = wait(list(pending), timeout=core.hedge_after, return_when=FIRST_COMPLETED)
        if not done:
            if not others:
                return False  # slow answers and nothing else to ask: the general way
            i, fragment = others.pop(0)  # slow answers: ask another fragment as well
            pending[core.io(partial(fetch_fragment, core, fragment))] = (i, fragment)
            continue
        for future in done:
            i, fragment = pending.pop(future)
            try:
                sources[i] = future.result()
            except Exception as exc:
                read.problems.append(problem(i, fragment, exc))
    if len(sources) < codec.data or not codec.rebuild_into(sources, missing):
        return False
    for i, rebuilt in missing.items():
        recorded = stripe.fragments[i]
        if recorded is not None and not matches(recorded.digest, rebuilt):
            read.problems.append(f"fragment {i}: rebuilt, not the one recorded")
            return False
    return True
