"""What the writer, the reader and maintenance share: backends, pools, health, placement.

Fragment I/O runs on a small thread pool (fragments to different backends in
parallel); stripe work (encode, digests, decode) runs on a second pool, so the
caller's thread keeps reading its source while earlier stripes are encoded and
stored. At most ``stripes_in_flight`` stripes of one call are in either pool at
once, which bounds the memory of a call whatever the object's size.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast

from storager._protocols import Storager
from storager.combinators._base import call_child
from storager.combinators._trace import in_context
from storager.combinators.striped._codecs import Codec
from storager.combinators.striped._digests import FragmentDigest
from storager.combinators.striped._health import Health
from storager.combinators.striped._placement import Placement
from storager.combinators.striped._spare import PagePool

__all__ = ["PIECE", "Core", "Damage", "Revoked"]

T = TypeVar("T")

#: The most one read into a caller's buffer asks for: what a caller taking its buffer
#: back may have to wait for.
PIECE = 1 << 20


class Revoked(Exception):
    """The caller took its buffer back: this thread must not touch it any more."""


@dataclass(slots=True)
class Damage:
    """What a read found wrong with an object's fragments (for heal)."""

    path: str
    generation: str
    problems: list[str] = field(default_factory=list)


class Core:
    """The internals one Striped store's calls share (see the module docstring)."""

    def __init__(
        self,
        backends: Mapping[str, Storager],
        codec: Codec,
        chunk_size: int,
        health: Health,
        placement: Placement,
        digest: FragmentDigest,
        *,
        io_workers: int,
        stripe_workers: int,
        stripes_in_flight: int,
        write_quorum: int,
        hedge_after: float | None,
        on_damage: Callable[[Damage], None],
    ) -> None:
        self.backends = dict(backends)
        self.codec = codec
        self.chunk_size = chunk_size
        self.health = health
        self.placement = placement
        self.digest = digest
        self.stripes_in_flight = stripes_in_flight
        self.write_quorum = write_quorum
        self.hedge_after = hedge_after
        self.on_damage = on_damage
        #: Backends whose last read into a caller's buffer took under a tenth of
        #: ``hedge_after``: the caller's own thread may read from them (``_in_place``).
        self.quick: set[str] = set()
        #: Backends whose last such read came at ``_in_place.FAST_RATE`` or faster: CPU
        #: work, run in at most ``lanes`` threads at once.
        self.fast: set[str] = set()
        #: How many CPUs this process may run on.
        self.lanes = _cpus()
        #: Readers' spare and scratch buffers, one reader's worth kept (``_spare``).
        self.pages = PagePool(keep=codec.total * chunk_size)
        self._io = ThreadPoolExecutor(io_workers, thread_name_prefix="storager-striped-io")
        self._stripes = ThreadPoolExecutor(
            stripe_workers, thread_name_prefix="storager-striped-stripe"
        )
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="storager-striped-beside")

    def io(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the fragment I/O pool."""
        return self._io.submit(in_context(fn))

    def beside(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` (CPU work a caller splits with it) on the one thread kept for that.

        A thread of its own, so the work never queues behind the I/O pool's reads (a
        slow backend may hold them all) or the stripe pool's prefetching.
        """
        return self._beside.submit(in_context(fn))

    def stripe(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the stripe pool (encode, decode, digests)."""
        return self._stripes.submit(in_context(fn))

    def put(self, name: str, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write one fragment, recording the backend's health."""
        try:
            call_child(self.backends[name], "write", key, lambda b: b.write(key, data))
        except Exception as exc:
            self.health.fail(name, exc)
            raise
        self.health.ok(name)

    def get(self, name: str, key: str) -> bytes:
        """Read one fragment, recording the backend's health."""
        try:
            data = call_child(self.backends[name], "read", key, lambda b: b.read(key))
        except Exception as exc:
            self.health.fail(name, exc)
            raise
        self.health.ok(name)
        return data

    def get_into(
        self,
        name: str,
        key: str,
        view: memoryview,
        hold: Callable[[], AbstractContextManager[None]] | None = None,
        on_piece: Callable[[memoryview], object] | None = None,
    ) -> int:
        """Read one fragment into ``view``, recording the backend's health.

        Returns how many bytes the fragment has, up to ``len(view) + 1`` (one more
        than fits: it is longer than the caller expects). The bytes go straight from
        the backend's reader into ``view`` (no copy of our own), at most ``PIECE``
        bytes per read, each read inside ``hold()`` where given (the caller's buffer
        is lent: ``_fragments.Lease``), and each piece read is handed to
        ``on_piece`` (a digest's update) inside the same ``hold()``.
        """

        def fill(backend: Storager) -> int:
            with backend.open_reader(key) as reader:
                readinto = cast(Any, reader).readinto  # the protocol's readers all have it
                n = 0
                while n < len(view):
                    with hold() if hold is not None else contextlib.nullcontext():
                        got = readinto(view[n : n + PIECE])
                        if got and on_piece is not None:
                            on_piece(view[n : n + got])
                    if not got:
                        return n
                    n += got
                return n + len(reader.read(1))

        try:
            n = call_child(self.backends[name], "open_reader", key, fill)
        except Revoked:
            raise  # the caller gave the read up: nothing is known of the backend
        except Exception as exc:
            self.health.fail(name, exc)
            raise
        self.health.ok(name)
        return n

    def delete_chunks(self, chunks: Iterable[tuple[str, str]]) -> int:
        """Delete chunks, best effort and in parallel; return how many were deleted."""
        futures = [self.io(partial(self.backends[name].delete, key)) for name, key in chunks]
        deleted = 0
        for future in futures:
            with contextlib.suppress(Exception):
                future.result()
                deleted += 1
        return deleted

    def shutdown(self) -> None:
        """Stop both pools; running and queued tasks finish in the background.

        Queued tasks are not cancelled: ``Future.cancel`` does not wake a ``wait()``
        already waiting on the future, so a stripe task waiting for a cancelled
        fragment read would wait forever (and hold the interpreter at exit). Queued
        work is bounded by ``stripes_in_flight`` per call; a task that needs a pool
        after this fails at once.
        """
        self._io.shutdown(wait=False)
        self._stripes.shutdown(wait=False)
        self._beside.shutdown(wait=False)
        self.pages.clear()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - platforms without it
        return os.cpu_count() or 1


class InFlight:
    """A bound on one call's stripes in flight: ``acquire`` before submitting one."""

    def __init__(self, limit: int) -> None:
        self._sem = threading.BoundedSemaphore(limit)

    def acquire(self) -> None:
        self._sem.acquire()

    def release(self, _: object = None) -> None:
        self._sem.release()
