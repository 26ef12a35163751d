"""The writer: a stream of bytes becomes stripes of immutable chunks, stripe by stripe.

The caller's thread reads the source and cuts it into stripes of
``codec.data * chunk_size`` bytes (one copy, into a buffer the write reuses:
``_buffers.BufferPool``); each stripe goes to the stripe pool, which encodes it
(parity into reused buffers too) and places the fragments on distinct backends; the
I/O pool digests and writes them in parallel; then the stripe's buffers go back to
the write's pool for the next stripes. At most
``stripes_in_flight`` stripes of one write are in flight; the caller's thread waits
for room before it cuts the next one. The object's checksum is derived from the
fragments' digests (``composite_checksum``), so the data is not hashed twice.

A fragment whose backend fails is written again on another backend the stripe does
not use yet; when none is left the fragment stays missing. A stripe with fewer
than ``write_quorum`` fragments stored fails the write. Whatever made the write fail
(the caller's source, a size mismatch, backends), every chunk it wrote is deleted
before the error reaches the caller, best effort; ``gc`` removes what a crash
leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial

from storager._errors import InsufficientStorageError, ServiceInternalError
from storager._protocols import IoCallback, WriteData
from storager._streams import iter_chunks
from storager.combinators.striped._buffers import BufferPool
from storager.combinators.striped._codecs import Alloc
from storager.combinators.striped._core import Core, InFlight
from storager.combinators.striped._health import describe_error
from storager.combinators.striped._manifest import (
    Fragment,
    Stripe,
    chunk_key,
    composite_checksum,
)

__all__ = ["Group", "backend_states", "write_group"]

_RETRIES_PER_FRAGMENT = 2


@dataclass(frozen=True, slots=True)
class Group:
    """What one write stored: its stripes, size and checksum (``composite_checksum``)."""

    stripes: tuple[Stripe, ...]
    size: int
    checksum: str


@dataclass(slots=True)
class _Placed:
    backend: str
    key: str
    counted: int


@dataclass(frozen=True, slots=True)
class Cut:
    """One stripe cut from the source: its bytes, and the write's buffer under them, if any."""

    view: bytes | memoryview
    owner: bytearray | None


class _Cancelled(Exception):
    """The write was given up: a stripe still queued must store nothing."""


def backend_states(core: Core) -> str:
    """Return every backend's state in one line, for errors."""
    usage = core.placement.usage() or {}
    quotas = core.placement.quotas
    states = [core.health.report(n, usage.get(n), quotas.get(n)) for n in core.backends]
    return "; ".join(f"{state.name}: {state.describe()}" for state in states)


class _Write:
    """One write in progress: its chunks (for cleanup) and its abort flag."""

    def __init__(self, core: Core, op: str, path: str, generation: str) -> None:
        self.core = core
        self.buffers = BufferPool()
        self.op = op
        self.path = path
        self.generation = generation
        self.aborted = threading.Event()
        self.lock = threading.Lock()
        # Every chunk a put was tried for, with the bytes counted for it on its backend.
        self.chunks: list[_Placed] = []

    def store_stripe(self, index: int, offset: int, cut: Cut) -> tuple[Stripe, list[str]]:
        """Encode one stripe and store its fragments (runs on the stripe pool).

        Returns the stripe and the digest of every fragment, stored or not (the
        object's checksum must not depend on which backends took the write). The
        stripe's buffers go back to the write's pool, unless a put may still read them.
        """
        owned = [cut.owner] if cut.owner is not None else []

        def alloc(size: int) -> bytearray:
            buffer = self.buffers.take(size)
            owned.append(buffer)
            return buffer

        settled = [True]  # False while puts may be reading the buffers
        try:
            if self.aborted.is_set():
                raise _Cancelled
            return self._store(index, offset, cut.view, alloc, settled)
        finally:
            if settled[0]:
                self.buffers.give(owned)

    def _store(
        self,
        index: int,
        offset: int,
        data: bytes | memoryview,
        alloc: Alloc,
        settled: list[bool],
    ) -> tuple[Stripe, list[str]]:
        core = self.core
        codec = core.codec
        fragments = codec.encode(data, alloc)
        # Each distinct buffer is digested once (replicas share one), on the I/O thread
        # that writes it first, so digests of one stripe run in parallel.
        digests: dict[int, Future[str]] = {}
        digests_lock = threading.Lock()

        def digest_of(fragment: bytes | bytearray | memoryview) -> str:
            with digests_lock:
                pending = digests.get(id(fragment))
                mine = pending is None
                if pending is None:
                    pending = digests[id(fragment)] = Future()
            if mine:
                # Settle the shared future whatever happens: other puts of this buffer wait
                # on it.
                try:
                    pending.set_result(core.digest.of(fragment))
                except BaseException as exc:
                    pending.set_exception(exc)
                    raise
            return pending.result()

        size = max((len(f) for f in fragments), default=0)
        targets = core.placement.choose(codec.total, size)
        if len(targets) < core.write_quorum:
            need = (
                str(codec.total)
                if core.write_quorum == codec.total
                else f"{codec.total} (at least {core.write_quorum})"
            )
            for name in targets:
                core.placement.add(name, -size)
            raise InsufficientStorageError(
                self.op,
                "striped",
                self.path,
                f"stripe {index} needs {need} distinct backends up with room for {size} "
                f"bytes, found {len(targets)}: {backend_states(core)}",
            )
        for i, name in enumerate(targets):  # reserve each fragment's own length
            core.placement.add(name, len(fragments[i]) - size)
        used = set(targets)
        used_lock = threading.Lock()
        errors: list[str] = []

        def put(i: int, name: str) -> Fragment | None:
            fragment = fragments[i]
            recorded = digest_of(fragment)
            key = chunk_key(self.generation, index, i)
            for attempt in range(_RETRIES_PER_FRAGMENT + 1):
                if self.aborted.is_set():
                    core.placement.add(name, -len(fragment))
                    raise _Cancelled
                entry = _Placed(name, key, len(fragment))
                with self.lock:
                    self.chunks.append(entry)
                try:
                    core.put(name, key, fragment)
                except Exception as exc:
                    core.placement.add(name, -len(fragment))
                    entry.counted = 0
                    errors.append(f"{name}: {describe_error(exc)}")
                    if attempt == _RETRIES_PER_FRAGMENT:
                        return None
                    with used_lock:
                        other = core.placement.choose(1, len(fragment), exclude=used)
                        if not other:
                            return None
                        name = other[0]
                        used.add(name)
                    continue
                return Fragment(name, key, len(fragment), recorded)
            return None

        settled[0] = False
        futures = [core.io(partial(put, i, n)) for i, n in enumerate(targets)]
        wait(futures)
        settled[0] = True
        stored: list[Fragment | None] = [None] * codec.total
        for i, future in enumerate(futures):
            stored[i] = future.result()  # _Cancelled propagates
        present = sum(f is not None for f in stored)
        if present < core.write_quorum:
            raise ServiceInternalError(
                self.op,
                "striped",
                self.path,
                f"stripe {index} stored {present} of {codec.total} fragments, needs "
                f"{core.write_quorum}: {'; '.join(errors)}",
            )
        # Fragments that found no backend are digested here (the others are cached).
        return Stripe(offset, len(data), tuple(stored)), [digest_of(f) for f in fragments]

    def clean_up(self) -> None:
        """Delete every chunk this write stored (best effort)."""
        with self.lock:
            chunks = list(self.chunks)
            self.chunks.clear()
        for placed in chunks:
            self.core.placement.add(placed.backend, -placed.counted)
        self.core.delete_chunks((p.backend, p.key) for p in chunks)


def _stripes_of(
    op: str,
    path: str,
    data: WriteData,
    stripe_bytes: int,
    size: int | None,
    io_callback: IoCallback | None,
    buffers: BufferPool,
) -> Iterator[Cut]:
    """Yield the source cut in stripes of ``stripe_bytes`` (the last may be shorter).

    Each stripe is one copy of the source's bytes into a buffer of the write's pool
    (none when a ``bytes`` chunk is exactly a stripe: it is the stripe).
    """
    buffer: bytearray | None = None
    held = 0
    for chunk in iter_chunks(op, "striped", path, data, size=size, io_callback=io_callback):
        view = memoryview(chunk).cast("B")
        if held == 0 and len(view) == stripe_bytes and isinstance(chunk, bytes):
            yield Cut(chunk, None)
            continue
        pos = 0
        while pos < len(view):
            if buffer is None:
                buffer = buffers.take(stripe_bytes)
            take = min(stripe_bytes - held, len(view) - pos)
            buffer[held : held + take] = view[pos : pos + take]
            held += take
            pos += take
            if held == stripe_bytes:
                yield Cut(memoryview(buffer), buffer)
                buffer, held = None, 0
    if buffer is not None and held:
        yield Cut(memoryview(buffer)[:held], buffer)
    elif buffer is not None:
        buffers.give([buffer])


def write_group(
    core: Core,
    op: str,
    path: str,
    generation: str,
    data: WriteData,
    *,
    size: int | None = None,
    io_callback: IoCallback | None = None,
) -> Group:
    """Store ``data`` as stripes of chunks named by ``generation``; nothing is published.

    Raises:
        InsufficientStorageError: A stripe cannot be placed on enough backends.
        ServiceInternalError: Backends failed and a stripe kept too few fragments.
        InvalidArgumentError: The data is not bytes-like or has not ``size`` bytes.
        Exception: the caller's source's own error, unchanged.
    """
    write = _Write(core, op, path, generation)
    limit = InFlight(core.stripes_in_flight)
    futures: list[Future[tuple[Stripe, list[str]]]] = []
    offset = 0
    try:
        stripe_bytes = core.codec.data * core.chunk_size
        for index, stripe in enumerate(
            _stripes_of(op, path, data, stripe_bytes, size, io_callback, write.buffers)
        ):
            limit.acquire()
            for done in futures:
                if done.done() and done.exception() is not None:
                    limit.release()
                    done.result()
            future = core.stripe(partial(write.store_stripe, index, offset, stripe))
            future.add_done_callback(limit.release)
            futures.append(future)
            offset += len(stripe.view)
        results = [f.result() for f in futures]
    except BaseException:
        write.aborted.set()
        wait(futures)
        write.clean_up()
        raise
    checksum = composite_checksum([(s.length, digests) for s, digests in results])
    return Group(tuple(s for s, _ in results), offset, checksum)


def discard(core: Core, stripes: tuple[Stripe, ...]) -> None:
    """Delete the chunks of ``stripes`` (a group that will never be published)."""
    chunks = [(f.backend, f.key, f.length) for s in stripes for f in s.fragments if f]
    for name, _, nbytes in chunks:
        core.placement.add(name, -nbytes)
    core.delete_chunks((name, key) for name, key, _ in chunks)
