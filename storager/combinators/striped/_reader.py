"""The reader: stripes rebuilt from verified fragments, data fragments first.

For each stripe it asks for the ``data`` fragments it needs, data ones first (a
systematic code then decodes by copying) and fragments on down backends last. Every
fragment is checked against its length and digest from the manifest before it
reaches the codec: pyeclib would decode a corrupted fragment to wrong bytes without
a word. An error, a digest mismatch, or no answer within ``hedge_after`` seconds
each start a request for the next fragment (a parity one), so a stripe stays
readable while at most ``parity`` of its fragments are lost. What was wrong is
reported to ``Core.on_damage`` for ``heal``.

Ranged reads fetch only the stripes they overlap. ``open_reader`` keeps the stripe it
reads and prefetches the next ones (up to ``stripes_in_flight``, never past its range);
``read`` fills its result through the same reader, 64 MiB per call. A reader's
``readinto`` (and so a large ``read``) first lets ``_whole`` (whole healthy fragments
on fast backends, planned cheaply), then ``_in_place`` serve what it can straight
into the caller's buffer (whole data fragments, and missing ones rebuilt there, or
copied from the spare stripe a degraded request left for the next one); whatever that
cannot serve (a fragment only partly asked for, padded, or a stripe it cannot rebuild
in place) is served from the stripe, rebuilt as above, and copied.
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import Any

from storager._errors import ServiceInternalError
from storager._protocols import IoCallback
from storager._streams import RangeReader
from storager.combinators.striped._core import Core, Damage
from storager.combinators.striped._digests import matches
from storager.combinators.striped._fragments import fetch_fragment, problem
from storager.combinators.striped._in_place import read_in_place
from storager.combinators.striped._manifest import Manifest, codec_of
from storager.combinators.striped._spare import Scratch, Spare
from storager.combinators.striped._whole import read_whole

__all__ = ["Assembled", "fetch_stripe", "open_stripes", "read_range"]


def fetch_stripe(core: Core, op: str, path: str, manifest: Manifest, index: int) -> Assembled:
    """Rebuild stripe ``index`` of ``manifest`` from verified fragments.

    With every data fragment good, a systematic code's stripe is their payloads, not
    decoded (``Codec.pieces``).

    Raises:
        ServiceInternalError: Fewer than ``data`` good fragments could be read; the
            message names each fragment's outcome.
    """
    stripe = manifest.stripes[index]
    codec = codec_of(manifest.codec)
    present = [(i, f) for i, f in enumerate(stripe.fragments) if f is not None]
    # Up backends first, data fragments before parity within each group.
    present.sort(key=lambda item: (not core.health.is_up(item[1].backend), item[0]))
    good: dict[int, bytes] = {}
    problems: list[str] = []
    missing = [f"fragment {i}: never written" for i, f in enumerate(stripe.fragments) if f is None]
    pending: dict[Future[bytes], int] = {}
    queue = [i for i, _ in present]

    def launch() -> None:
        i = queue.pop(0)
        fragment = stripe.fragments[i]
        assert fragment is not None
        pending[core.io(partial(fetch_fragment, core, fragment))] = i

    while queue and len(pending) < codec.data:
        launch()
    while pending:
        done, _ = wait(list(pending), timeout=core.hedge_after, return_when=FIRST_COMPLETED)
        if not done:
            if queue:  # slow answers: ask another fragment as well
                launch()
            continue
        for future in done:
            i = pending.pop(future)
            fragment = stripe.fragments[i]
            assert fragment is not None
            try:
                good[i] = future.result()
            except Exception as exc:
                problems.append(problem(i, fragment, exc))
                if queue:
                    launch()
        if len(good) >= codec.data:
            break
    if problems or missing:
        core.on_damage(Damage(path, manifest.generation, problems + missing))
    if len(good) < codec.data:
        raise ServiceInternalError(
            op,
            "striped",
            path,
            f"stripe {index} ({codec.label()}) needs {codec.data} good fragments, got "
            f"{len(good)}: {'; '.join(problems + missing)}",
        )
    chosen = dict(sorted(good.items())[: codec.data])

    def check(i: int, rebuilt: bytes | bytearray | memoryview) -> bool:
        # A rebuilt fragment must be, byte for byte, the one the writer recorded.
        recorded = stripe.fragments[i]
        return recorded is None or (
            len(rebuilt) == recorded.length and matches(recorded.digest, rebuilt)
        )

    return Assembled(codec.pieces(chosen, stripe.length, check))


class Assembled:
    """A rebuilt stripe as consecutive pieces (views into its verified fragments)."""

    __slots__ = ("_ends", "_pieces")

    def __init__(self, pieces: list[bytes | bytearray | memoryview]) -> None:
        self._pieces = [memoryview(p).cast("B") for p in pieces]
        self._ends = list(itertools.accumulate(len(p) for p in self._pieces))

    def views(self, lo: int, hi: int) -> Iterator[memoryview]:
        """Yield views of the bytes ``[lo, hi)`` of the stripe, piece by piece."""
        index = bisect.bisect_right(self._ends, lo)
        while lo < hi and index < len(self._pieces):
            start = self._ends[index] - len(self._pieces[index])
            end = min(hi, self._ends[index])
            yield self._pieces[index][lo - start : end - start]
            lo = end
            index += 1


def _offsets(manifest: Manifest) -> list[int]:
    return [s.offset for s in manifest.stripes]


def _span(offsets: list[int], start: int, end: int) -> range:
    """Return the indexes of the stripes (starting at ``offsets``) overlapping ``[start, end)``."""
    first = max(0, bisect.bisect_right(offsets, start) - 1)
    last = bisect.bisect_left(offsets, end)
    return range(first, last)


def _window(manifest: Manifest, offset: int | None, size: int | None) -> tuple[int, int]:
    start = min(offset or 0, manifest.size)
    end = manifest.size if size is None else min(manifest.size, start + size)
    return start, end


#: How much of a ``read`` one call of the reader's ``readinto`` takes at most (rounded
#: down to whole stripes): the bigger, the fewer hand-overs between the threads reading
#: its fragments; ``io_callback`` hears of each.
READ_SPAN = 64 << 20


def read_range(
    core: Core,
    op: str,
    path: str,
    manifest: Manifest,
    offset: int | None,
    size: int | None,
    io_callback: IoCallback | None,
) -> bytes:
    """Return ``size`` bytes of the object from ``offset`` (fetching only those stripes).

    The bytes land in the ``bytes`` object returned, with no copy of ours where the
    fragments can be read in place: ``io.BufferedReader.read`` makes that object (the
    one way to fill a ``bytes`` in place from Python) and hands the reader
    (``open_stripes``) views of it, ``READ_SPAN`` at a time, whose whole fragments are
    read into it on every CPU and checked there (``_whole``, ``_in_place``); the rest
    is rebuilt and copied in. Measured: 2.6x the speed of joining rebuilt stripes
    (``benchmarks/README.md``, "Session 14" under Striped).

    The result is CPython's, and ``BufferedReader``'s views do not keep it alive: once
    ``read`` raises it is freed, so every lease must be back first (``_in_place``
    takes them back through interrupts; what Python leaves open is an interrupt on
    that call itself). Owning the result instead (``io.BytesIO.getbuffer``) was tried:
    views some thread still held made ``getvalue`` copy it (0.65x, and RSS grew).

    Raises:
        ServiceInternalError: A stripe could not be rebuilt (``fetch_stripe``), or the
            reader ended short of ``size``.
    """
    start, end = _window(manifest, offset, size)
    if start >= end:
        return b""
    stripe_bytes = max(1, manifest.stripes[0].length)
    span = max(stripe_bytes, READ_SPAN // stripe_bytes * stripe_bytes)
    raw = _Spans(open_stripes(core, path, manifest, start, end - start, op=op), span, io_callback)
    with io.BufferedReader(raw, buffer_size=min(span, 1 << 20)) as reader:
        data = reader.read(end - start)
    if len(data) != end - start:
        raise ServiceInternalError(
            op, "striped", path, f"the stripes gave {len(data)} of {end - start} bytes"
        )
    return data


class _Spans(io.RawIOBase):
    """A raw reader passing at most ``span`` bytes per ``readinto`` on, and telling of each."""

    def __init__(self, inner: RangeReader, span: int, io_callback: IoCallback | None) -> None:
        super().__init__()
        self._inner = inner
        self._span = span
        self._io_callback = io_callback

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._inner.readinto(view[: self._span])
        if n and self._io_callback is not None:
            self._io_callback(n)
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class _Window:
    """``open_reader``'s stripes: the one being read, and the next ones fetched ahead."""

    def __init__(
        self, core: Core, op: str, path: str, manifest: Manifest, start: int, end: int
    ) -> None:
        self._core = core
        self._op = op
        self._path = path
        self._manifest = manifest
        self._codec = codec_of(manifest.codec)
        self._start = start
        #: Where the reader's range ends (object offset).
        self._end = end
        self._offsets = _offsets(manifest)
        #: One past the last stripe the range overlaps: nothing beyond is fetched ahead.
        self._stop = _span(self._offsets, start, end).stop if start < end else 0
        self._cache: dict[int, Future[Assembled]] = {}
        self._spare = Spare(core.pages)
        self._scratch = Scratch(core.pages, keep=self._codec.parity)

    def fetch(self, pos: int, size: int) -> memoryview:
        """Return up to ``size`` bytes from ``pos`` (a view, at most to a piece's end)."""
        absolute = self._start + pos
        index = _span(self._offsets, absolute, absolute + 1)[0]
        stripe = self._manifest.stripes[index]
        lo = absolute - stripe.offset
        for view in self._stripe(index).views(lo, lo + size):
            return view
        return memoryview(b"")

    def fetch_into(self, pos: int, view: memoryview) -> int:
        """Fill ``view`` with the bytes from ``pos``; return how many.

        All of ``view`` when ``read_whole`` or ``read_in_place`` served any of it;
        otherwise as much as one stripe holds (a raw reader may return less). What
        they can serve lands in ``view`` straight from the fragments (``read_whole``
        first: whole healthy fragments on fast backends, planned cheaply); every other
        byte comes from its stripe, rebuilt (``fetch_stripe``, which also reports any
        damage it meets).
        """
        absolute = self._start + pos
        end = absolute + len(view)
        indexes = _span(self._offsets, absolute, end)
        spare = self._spare
        held = spare.holding
        whole = None
        if held is None or held not in indexes:
            whole = read_whole(
                self._core, self._path, self._manifest, view, absolute, indexes, self._cache
            )
            if whole is not None and whole.complete:
                return len(view)
        served = spare.copy_into(view, absolute)
        held = spare.holding
        skip = {*self._cache, *(() if held is None else (held,))}
        if whole is not None:  # the stripes it served are done; the rest go the general way
            served += whole.spans
            skip.update(whole.stripes)
        served += read_in_place(
            self._core,
            self._path,
            self._manifest,
            view,
            absolute,
            indexes,
            skip=skip,
            spare=spare,
            scratch=self._scratch,
            end=self._end,
            avoid=() if whole is None else whole.avoid,
        )
        if spare.holding not in (None, held):  # a stripe newly spared may hold some of it
            served += spare.copy_into(view, absolute)
        served.sort()
        if not served:
            return self._copy_into(absolute, view)
        cursor = absolute
        for lo, hi in [*served, (end, end)]:
            while cursor < lo:
                cursor += self._copy_into(
                    cursor, view[cursor - absolute : lo - absolute], ahead=False
                )
            cursor = max(cursor, hi)
        return len(view)

    def _copy_into(self, absolute: int, view: memoryview, *, ahead: bool = True) -> int:
        """Copy bytes from ``absolute`` into ``view`` from one stripe; return how many."""
        index = _span(self._offsets, absolute, absolute + 1)[0]
        stripe = self._manifest.stripes[index]
        lo = absolute - stripe.offset
        n = 0
        for piece in self._stripe(index, ahead=ahead).views(lo, lo + len(view)):
            view[n : n + len(piece)] = piece
            n += len(piece)
        return n

    def _stripe(self, index: int, *, ahead: bool = True) -> Assembled:
        """Return stripe ``index``; ``ahead``: fetch the next ones too, drop any others."""
        core = self._core
        count = max(self._stop, index + 1)
        stop = min(index + core.stripes_in_flight, count) if ahead else index + 1
        for stale in [i for i in self._cache if i < index or (ahead and i >= stop)]:
            self._cache.pop(stale).cancel()
        for i in range(index, stop):
            if i not in self._cache:
                self._cache[i] = core.stripe(
                    partial(fetch_stripe, core, self._op, self._path, self._manifest, i)
                )
        return self._cache[index].result()

    def close(self) -> None:
        for future in self._cache.values():
            future.cancel()
        self._cache.clear()
        self._spare.release()
        self._scratch.release()


def open_stripes(
    core: Core,
    path: str,
    manifest: Manifest,
    offset: int | None,
    size: int | None,
    *,
    op: str = "open_reader",
) -> RangeReader:
    """Return a seekable raw reader over one manifest (so it never mixes versions).

    It keeps the stripe it reads and prefetches the next ``stripes_in_flight - 1``.
    ``op`` names the operation in its errors.
    """
    start, end = _window(manifest, offset, size)
    window = _Window(core, op, path, manifest, start, end)
    return RangeReader(
        window.fetch, end - start, on_close=window.close, fetch_into=window.fetch_into
    )
