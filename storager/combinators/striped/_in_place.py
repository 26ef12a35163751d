"""Reads that land in the caller's buffer: whole data fragments, and rebuilt ones.

Where a codec's data fragments hold the object's bytes as they are
(``Codec.block``: ISA-L's Reed-Solomon, replicas, stripes), a reader's ``readinto``
reads each data fragment its buffer covers whole straight into the buffer, in
parallel, and checks it there against its digest. A stripe the buffer covers whole
whose data fragments could not all be read (a backend down, failing, a fragment
damaged) has the missing ones rebuilt into the buffer as well, where the codec can
(``Codec.rebuild_into``): from the data fragments already in place and the fewest
parity fragments, each checked, and each rebuilt fragment checked against the digest
the writer recorded; the parity fragments such a stripe needs, where its missing
data fragments are known beforehand (never written, or on a backend known down),
are read beside the data ones, into the reader's scratch. A stripe the buffer
covers only in part, whose data fragments cannot all be read, is read whole with
the rest going to the reader's spare stripe (``_spare``), which serves the next
request. Whatever this cannot serve is left to the caller, which rebuilds the
stripe the general way (``_reader.fetch_stripe``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from concurrent.futures import TimeoutError as FuturesTimeout
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
from storager.combinators.striped._halves import rebuild_in_halves
from storager.combinators.striped._manifest import Fragment, Manifest, Stripe, codec_of
from storager.combinators.striped._spare import Scratch, Spare

__all__ = ["Direct", "StripeRead", "read_in_place", "run_all", "short", "usable_fragments"]


@dataclass(slots=True)
class StripeRead:
    """One stripe's part of a request: which data fragments land where."""

    stripe: Stripe
    block: int
    #: Data fragment index -> the slice of the caller's buffer it fills.
    views: dict[int, memoryview] = field(default_factory=dict)
    #: Data fragments read and checked in place.
    good: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    #: Whether the request covers the whole stripe, every data fragment unpadded
    #: (or the spare takes what it does not cover).
    whole: bool = False
    #: Data fragments read into the reader's spare stripe, not the caller's buffer.
    spare: set[int] = field(default_factory=set)
    #: Parity fragments read with the data ones (into scratch) to rebuild missing ones.
    parity: dict[int, memoryview] = field(default_factory=dict)


def read_in_place(
    core: Core,
    path: str,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    *,
    skip: Container[int] = (),
    spare: Spare | None = None,
    scratch: Scratch | None = None,
    end: int | None = None,
    avoid: Container[Fragment] = (),
) -> list[tuple[int, int]]:
    """Fill what can be filled of ``view`` (object bytes from ``start``) from fragments.

    ``indexes``: the stripes the request overlaps. Stripes in ``skip`` are left
    alone (the caller has them already). With a ``spare``, a stripe the request
    ends inside, short of ``end`` (where the reader stops), if its data fragments
    cannot all be read, is read whole: the fragments outside the request go to the
    spare (``_spare``), which holds them, checked, for the next request. With a
    ``scratch``, the parity fragments a whole stripe will need to rebuild data
    fragments known missing are read into it beside the data ones (its buffers are
    free again once this returns). Fragments in ``avoid`` (found failing or late by this
    request already, ``_whole``) are treated as if on a backend down. Returns the
    object spans ``(lo, hi)`` now in ``view``, sorted; every byte of them checked.
    """
    codec = codec_of(manifest.codec)
    limit = start + len(view) if end is None else end
    usable = usable_fragments(core, avoid)
    plan = _plan(core, codec, manifest, view, start, indexes, skip, spare, limit, usable)
    reads: list[Direct] = []
    for s in plan:
        for i, v in s.views.items():
            fragment = s.stripe.fragments[i]
            if fragment is not None and usable(fragment):
                reads.append(Direct(fragment, v, s, i))
        if scratch is not None:
            reads += _parity_reads(codec, s, scratch, usable)
    if not reads:
        return []
    try:
        run_all(core, reads)
        _rebuild_all(core, codec, plan, usable)
    finally:
        if scratch is not None:
            scratch.reclaim()  # every lease is back: nothing of ours uses it any more
    served: list[tuple[int, int]] = []
    for s in plan:
        if s.problems and s.good >= set(s.views):  # damage met, but all of it served
            core.on_damage(Damage(path, manifest.generation, s.problems))
        lo0 = s.stripe.offset
        for i in s.good & s.views.keys():
            if i in s.spare:
                assert spare is not None
                spare.hold(lo0 + i * s.block, s.views[i])
            else:
                served.append((lo0 + i * s.block, lo0 + i * s.block + len(s.views[i])))
    served.sort()
    return served


def usable_fragments(core: Core, avoid: Container[Fragment]) -> Callable[[Fragment], bool]:
    """Return whether a fragment is to be read: on a backend up, and not one avoided."""
    is_up = core.health.is_up
    if not avoid:
        return lambda fragment: is_up(fragment.backend)
    return lambda fragment: fragment not in avoid and is_up(fragment.backend)


def _plan(
    core: Core,
    codec: Codec,
    manifest: Manifest,
    view: memoryview,
    start: int,
    indexes: range,
    skip: Container[int],
    spare: Spare | None,
    limit: int,
    usable: Callable[[Fragment], bool],
) -> list[StripeRead]:
    end = start + len(view)
    plan: list[StripeRead] = []
    #: The stripe the request ends inside, short of ``limit``, if its data fragments
    #: cannot all be read (the spare takes the rest of it).
    partial: tuple[int, StripeRead] | None = None
    for index in indexes:
        stripe = manifest.stripes[index]
        if stripe.offset + stripe.length <= start or stripe.offset >= end or index in skip:
            continue
        block = codec.block(stripe.length)
        if not block:
            continue
        read = StripeRead(stripe, block)
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
        goes_on = end < min(stripe.offset + stripe.length, limit)
        if spare is not None and unpadded and goes_on and short(codec, stripe, usable):
            partial = (index, read)  # the last stripe of the request
        elif read.views:
            plan.append(read)
    if partial is not None and spare is not None:
        index, read = partial
        _to_spare(codec, read, spare.take(index, codec.data * read.block))
        plan.append(read)
        plan.sort(key=lambda r: r.stripe.offset)
    return plan


def _parity_reads(
    codec: Codec, s: StripeRead, scratch: Scratch, usable: Callable[[Fragment], bool]
) -> list[Direct]:
    """Read, with the data fragments, the parity ones a whole stripe will need.

    As many as the stripe has data fragments never written or on backends known
    down (up backends only, first ones first): asked now, beside the data reads,
    into the reader's scratch, rather than in a second round once those fail.
    """
    if not s.whole:
        return []
    fragments = s.stripe.fragments
    short = sum(1 for i in s.views if (f := fragments[i]) is None or not usable(f))
    reads: list[Direct] = []
    for i in range(codec.data, len(fragments)):
        fragment = fragments[i]
        if len(reads) == short:
            break
        if fragment is not None and usable(fragment):
            s.parity[i] = scratch.take(fragment.length)
            reads.append(Direct(fragment, s.parity[i], s, i))
    return reads


def short(codec: Codec, stripe: Stripe, usable: Callable[[Fragment], bool]) -> bool:
    """Whether some data fragment of ``stripe`` was never written or is not usable."""
    return any(f is None or not usable(f) for f in stripe.fragments[: codec.data])


def _to_spare(codec: Codec, read: StripeRead, buffer: memoryview) -> None:
    """Send every data fragment ``read`` does not cover to the spare: the stripe is whole."""
    stripe = read.stripe
    for i in range(codec.data):
        holds = min(read.block, stripe.length - i * read.block)
        if i in read.views or holds <= 0:
            continue
        read.views[i] = buffer[i * read.block : i * read.block + holds]
        read.spare.add(i)
    read.whole = True


class Direct:
    """One read into the caller's buffer, with its own lease and its own deadline."""

    __slots__ = (
        "chain",
        "fragment",
        "given_up",
        "index",
        "late",
        "lease",
        "read",
        "started",
        "view",
    )

    def __init__(self, fragment: Fragment, view: memoryview, read: StripeRead, index: int):
        self.fragment = fragment
        self.view = view
        self.read = read
        self.index = index
        self.lease = Lease()
        #: When a pool thread took it up (its deadline runs from then, not from the queue;
        #: ``time.perf_counter``: ``monotonic`` ticks every 15.6 ms on Windows).
        self.started: float | None = None
        self.given_up = False
        #: Given up because it ran for ``hedge_after`` (not merely queued behind one).
        self.late = False
        #: The pool task's reads, in order, where one task reads several (``_lanes``).
        self.chain: list[Direct] | None = None


def run_all(core: Core, reads: list[Direct]) -> None:
    """Run every read into the caller's buffer, each within ``hedge_after`` of its start.

    The pool takes the reads; each lends the caller's buffer to its thread (``Lease``),
    and every lease is taken back before this returns, even on an error or an
    interrupt, so no thread touches the buffer later. A read that has run for
    ``hedge_after`` is given up (its span is served from the stripe, which asks other
    fragments); one still queued is not (its clock has not started). This thread reads
    one fragment itself (a woken pool thread costs ~0.1 ms here, a quarter of a 4 MiB
    fragment: measured 0.74x of the fs store against 0.45x) where it cannot hang the
    caller for long: without ``hedge_after``, or from a backend whose last read here
    succeeded within a tenth of it (``Core.quick``; a read of its own cannot be given
    up). (Letting this thread take, in turn, every read no pool thread has taken yet
    was slower: 3.5-3.9 against 4.2-4.3 GB/s for a degraded read.)

    Reads from backends that answer at memory speed (``Core.fast``) are CPU work, not
    waiting: they go in at most ``Core.lanes`` lanes (the process's CPUs), this
    thread's and a pool task for each other, each lane reading its share one after
    another (``_lanes``). Four such reads on two CPUs, a degraded stripe's, ran at
    7.2 GB/s in two lanes against 6.0 all at once (``benchmarks/README.md``,
    "Session 11"). A lane whose read turns out slow hands the rest of its reads to
    the pool, one task each.
    """
    own, chains = _lanes(core, reads)
    futures: dict[Future[None], Direct] = {}
    try:
        for chain in chains:
            futures.update(_submit_chain(core, [reads[n] for n in chain]))
        for k, n in enumerate(own):
            _settle(reads[n], partial(_timed, core, reads[n], None))
            if k + 1 < len(own) and reads[n].fragment.backend not in core.fast:
                # Slow (or failed) after all: the rest of this lane goes to the pool,
                # where a read can be given up; this thread's own reads cannot.
                for m in own[k + 1 :]:
                    futures[core.io(partial(_pooled, core, reads[m]))] = reads[m]
                break
        _wait_hedged(core, futures)
    finally:
        _revoke_all(reads)
    for future, direct in futures.items():
        if future.done() and not direct.given_up:
            _settle(direct, future.result)


def _lanes(core: Core, reads: list[Direct]) -> tuple[list[int], list[list[int]]]:
    """Return the reads this thread does itself, and the pool's tasks (reads in turn).

    The reads from fast backends (more than one of them) are dealt round-robin over
    ``min(Core.lanes, their number)`` lanes, the first this thread's where it may read
    itself (``_own_read``'s rule), each other lane one pool task; every other read is
    a pool task of its own (a backend that waits on a network gains from every read
    at once). Otherwise this thread takes one read (``_own_read``), the pool the rest.
    """
    fast = [n for n, d in enumerate(reads) if d.fragment.backend in core.fast]
    if len(fast) > 1:
        width = min(core.lanes, len(fast))
        dealt = [fast[k::width] for k in range(width)]
        others = [[n] for n in range(len(reads)) if n not in fast]
        mine = dealt[0]
        if core.hedge_after is None or all(reads[n].fragment.backend in core.quick for n in mine):
            return mine, dealt[1:] + others
        return [], dealt + others
    own = _own_read(core, reads)
    return ([] if own is None else [own]), [[n] for n in range(len(reads)) if n != own]


def _submit_chain(core: Core, chain: list[Direct]) -> dict[Future[None], Direct]:
    """Run ``chain``'s reads one after another in one pool task; return a future for each.

    Each read's hedging clock starts when the task reaches it (``_pooled``); a read
    given up before then fails at once (its lease refuses it) and the task goes on.
    Reads behind one given up as late are given up too (``_wait_hedged``): the task
    may stay in that read for as long as its backend takes.
    """
    if len(chain) == 1:
        return {core.io(partial(_pooled, core, chain[0])): chain[0]}
    pairs: list[tuple[Direct, Future[None]]] = [(direct, Future()) for direct in chain]
    for direct in chain:
        direct.chain = chain

    def run() -> None:
        settled = 0  # reads run here or handed to tasks of their own
        try:
            for direct, future in pairs:
                _run_into(core, direct, future)
                settled += 1
                if settled < len(pairs) and direct.fragment.backend not in core.fast:
                    # Slow (or failed) after all: the rest need not wait for each other.
                    for later, its_future in pairs[settled:]:
                        later.chain = None  # on its own now: behind no late read
                        core.io(partial(_run_into, core, later, its_future))
                        settled += 1
                    return
        finally:
            for _, future in pairs[settled:]:  # never left pending, whatever stopped us
                if not future.done():
                    future.set_exception(Revoked())

    core.io(run)  # a closed store raises here: no future of ours is waited for then
    return {future: direct for direct, future in pairs}


def _run_into(core: Core, direct: Direct, future: Future[None]) -> None:
    """Run one read of a lane as a pool task would, its outcome into ``future``."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        _pooled(core, direct)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)


def _wait_hedged(core: Core, futures: dict[Future[None], Direct]) -> None:
    """Wait for the reads; give up each one that has run for ``hedge_after``."""
    hedge = core.hedge_after
    if hedge is None:
        wait(futures)
        return
    pending = set(futures)
    while pending:
        starts = [futures[f].started for f in pending]
        running = [t for t in starts if t is not None]
        timeout = max(0.0, min(running) + hedge - time.perf_counter()) if running else hedge
        # Until the first deadline, or until one pending read (any) is done: nothing
        # is to be done before a deadline, and waiting on one future's own condition
        # costs less than ``concurrent.futures.wait``'s waiter (with the cheaper
        # ``Lease``, a healthy read 2.4% faster: ``benchmarks/README.md``, "Session 13"
        # under Striped).
        with contextlib.suppress(FuturesTimeout, CancelledError):
            next(iter(pending)).exception(timeout)
        pending = {f for f in pending if not f.done()}
        now = time.perf_counter()
        # `started` is set by the pool thread meanwhile: read once per read.
        late = {f for f in pending if _ran_for(futures[f], now) >= hedge}
        slow = {futures[f].fragment.backend for f in late}
        stuck = {id(futures[f].chain) for f in late if futures[f].chain is not None}
        for future in list(pending):
            direct = futures[future]
            # Late, or queued for a backend found slow, or behind a late read in its
            # pool task: given up (a queued one skips the backend when its turn comes,
            # rather than hold a pool thread; one behind a late read would wait for it).
            queued = direct.started is None
            behind = direct.chain is not None and id(direct.chain) in stuck
            if future in late or (queued and (direct.fragment.backend in slow or behind)):
                direct.lease.revoke()  # waits out the piece in progress, then refuses
                direct.given_up = True
                direct.late = future in late
                pending.discard(future)
        for backend in slow:  # no longer trusted to answer quickly (its read is left)
            core.quick.discard(backend)
            core.fast.discard(backend)


def _ran_for(direct: Direct, now: float) -> float:
    """How long the read has run (0 while it is still queued)."""
    started = direct.started
    return 0.0 if started is None else now - started


def _revoke_all(reads: list[Direct]) -> None:
    """Take back every lease; an interrupt meanwhile is raised once all are back.

    A revoke an interrupt cut short (even on its first line) is made again: revoking
    twice is harmless. The loop runs inside the ``try``, so an interrupt at its own
    jump is caught too. What Python leaves open: an interrupt on this call itself, or
    a third one on the retry's jump, after which a read may still write into a buffer
    its caller has let go (``_reader.read_range`` says what that means for ``read``).
    """
    interrupted: BaseException | None = None
    left = len(reads)
    while left:
        try:
            while left:
                reads[left - 1].lease.revoke()
                left -= 1
        except BaseException as exc:
            if interrupted is None:
                interrupted = exc
    if interrupted is not None:
        raise interrupted


def _own_read(core: Core, reads: list[Direct]) -> int | None:
    """Return which read this thread may do itself (see ``run_all``), if any."""
    if core.hedge_after is None:
        return 0
    for n, direct in enumerate(reads):
        if direct.fragment.backend in core.quick:
            return n
    return None


def _pooled(core: Core, direct: Direct) -> None:
    direct.started = time.perf_counter()
    _timed(core, direct, direct.lease.hold)


#: A read into the caller's buffer at this rate or faster (bytes/s) was CPU work, a
#: memory copy, not waiting: its backend is fast (``Core.fast``). A 4 MiB fragment
#: from the page cache comes at 6-15 GB/s here; no network store answers at 2 GB/s
#: per request, and a small fragment's fixed costs keep it well below.
FAST_RATE = 2e9


def _timed(core: Core, direct: Direct, hold: Hold | None) -> None:
    """Read one fragment in place; a backend is quick (or fast) only after a quick (or
    fast) success."""
    backend = direct.fragment.backend
    began = time.perf_counter()
    try:
        fetch_fragment_into(core, direct.fragment, direct.view, hold)
    except Revoked:
        raise  # given up: as late, judged where that was decided (``_wait_hedged``)
    except BaseException:
        core.quick.discard(backend)
        core.fast.discard(backend)
        raise
    took = time.perf_counter() - began
    hedge = core.hedge_after
    if hedge is not None and took < hedge / 10:
        core.quick.add(backend)
    else:
        core.quick.discard(backend)
    if direct.fragment.length >= took * FAST_RATE:
        core.fast.add(backend)
    else:
        core.fast.discard(backend)


def _settle(direct: Direct, outcome: Callable[[], None]) -> None:
    try:
        outcome()
    except Revoked:
        pass  # given up as slow: no damage, served from the stripe
    except Exception as exc:
        direct.read.problems.append(problem(direct.index, direct.fragment, exc))
    else:
        direct.read.good.add(direct.index)


@dataclass(slots=True)
class _Rebuild:
    """A stripe whose missing data fragments are rebuilt into the caller's buffer."""

    read: StripeRead
    missing: dict[int, memoryview]
    sources: dict[int, bytes | memoryview]
    #: Other fragments to ask, best first; and how many asked are still out.
    others: list[tuple[int, Fragment]]
    out: int = 0


def _rebuild_all(
    core: Core, codec: Codec, plan: list[StripeRead], usable: Callable[[Fragment], bool]
) -> None:
    """Rebuild into place what the reads left missing, every stripe at once.

    Only stripes the request covers whole, which enough other fragments can rebuild.
    Each takes the fewest other fragments (up backends first), each checked; one with
    no answer by ``hedge_after`` makes every stripe still short ask one more. Each
    rebuilt fragment is checked against the digest the writer recorded.
    """
    jobs: list[_Rebuild] = []
    pending: dict[Future[bytes], tuple[_Rebuild, int, Fragment]] = {}
    for s in plan:
        missing = {i: v for i, v in s.views.items() if i not in s.good}
        if not missing or not s.whole:
            continue
        for i in missing:
            if s.stripe.fragments[i] is None:
                s.problems.append(f"fragment {i}: never written")
        sources: dict[int, bytes | memoryview] = {
            i: s.views[i] if i in s.views else s.parity[i] for i in s.good
        }
        others = [
            (i, f)
            for i, f in enumerate(s.stripe.fragments)
            if i >= codec.data and f is not None and i not in s.parity
        ]
        others.sort(key=lambda item: (not usable(item[1]), item[0]))
        job = _Rebuild(s, missing, sources, others)
        if len(job.sources) + len(others) >= codec.data:
            jobs.append(job)

    def ask(job: _Rebuild) -> None:
        i, fragment = job.others.pop(0)
        pending[core.io(partial(fetch_fragment, core, fragment))] = (job, i, fragment)
        job.out += 1

    def top_up(job: _Rebuild) -> None:
        while job.others and len(job.sources) + job.out < codec.data:
            ask(job)

    for job in jobs:
        top_up(job)
    while any(len(j.sources) < codec.data for j in jobs) and pending:
        done, _ = wait(list(pending), timeout=core.hedge_after, return_when=FIRST_COMPLETED)
        if not done:  # slow answers: each stripe still short asks one more, if it can
            short = [j for j in jobs if len(j.sources) < codec.data and j.others]
            if not short:
                break  # nothing else to ask: the stripes still short go the general way
            for job in short:
                ask(job)
            continue
        for future in done:
            job, i, fragment = pending.pop(future)
            job.out -= 1
            try:
                job.sources[i] = future.result()
            except Exception as exc:
                job.read.problems.append(problem(i, fragment, exc))
                top_up(job)
    # What is still out reads into its own bytes, never the caller's: left to finish.
    for job in jobs:
        if len(job.sources) >= codec.data and _rebuilt_in_place(core, codec, job):
            job.read.good.update(job.missing)


def _rebuilt_in_place(core: Core, codec: Codec, job: _Rebuild) -> bool:
    if not rebuild_in_halves(core, codec, job.sources, job.missing):
        return False
    stripe = job.read.stripe
    for i, rebuilt in job.missing.items():
        recorded = stripe.fragments[i]
        if recorded is not None and not matches(recorded.digest, rebuilt):
            job.read.problems.append(f"fragment {i}: rebuilt, not the one recorded")
            return False
    return True
