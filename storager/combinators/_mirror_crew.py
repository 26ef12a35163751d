"""How a Mirror runs its targets at once, on threads: the sync form's seams.

The Mirror is written once, async (``storager/aio/combinators/_mirror*.py``), and its
sync form derived by ``python -m codegen``. Where the two worlds truly differ, the
derived code calls what this module defines, under the names the async source's seams
(``storager/aio/combinators/_mirror_crew.py``) have without their async spelling:

- :class:`Crew` (async: ``AsyncCrew``), the Mirror's pool: a :class:`SlotPool` of
  ``workers`` threads that runs a call on every target at once (``each``), races a
  read (``race``: the first good answer wins; a thread cannot be stopped, so the
  losers run on and what they return, a reader, is discarded when it comes), and
  feeds one stream to every target (``fan_out``: a :class:`Fan` of bounded queues);
- :func:`listing`, :func:`primed`, :func:`drop_listing`: a listing started at the
  call, its first item fetched there, so its errors surface there;
- :func:`chunks`: a write's data in chunks (``iter_chunks``);
- ``Interrupted``: what stops a change midway, a ``KeyboardInterrupt`` here (async: a
  cancellation); the Mirror then rolls the change back where it landed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import Any, Generic, TypeVar

from storager._streams import iter_chunks
from storager.combinators._base import prime
from storager.combinators._mirror_policy import Names, Outcome
from storager.combinators._pool import SlotPool, result_or_error

__all__ = [
    "Crew",
    "Fan",
    "Interrupted",
    "Primed",
    "chunks",
    "drop_listing",
    "listing",
    "primed",
    "recorded",
    "settled",
]

T = TypeVar("T")

#: What stops a change midway: the Mirror rolls it back where it landed, then re-raises.
Interrupted = KeyboardInterrupt

#: A listing whose first item is fetched (``prime``).
Primed = Iterator[T]

#: A write's data in chunks, checked against ``size`` (the async form's ``async_chunks``).
chunks = iter_chunks

#: How long a feed waits on a full queue before it checks that its target still reads.
_FEED_POLL = 0.05
_END = object()


class Crew(SlotPool):
    """The Mirror's pool: ``size`` threads, each call reserving the threads it needs."""

    def __init__(self, size: int) -> None:
        super().__init__(size, "storager-mirror")

    def each(self, names: Names, one: Callable[[str], None], *, settle: bool) -> None:
        """Run ``one(name)`` for every name at once; ``one`` records its own outcome.

        Interrupted with ``settle``, this still waits for the threads (Python cannot
        stop them), so the caller knows where a change landed before it rolls back; a
        second interruption during that wait, or one without ``settle``, leaves them
        running and says so (``settled`` is then False: nothing may be rolled back).
        """
        futures = self.submit_all([partial(_in_crew, one, n) for n in names])
        try:
            wait(futures)
        except BaseException as interruption:
            if not settle:
                _unsettled(interruption)
                raise
            try:
                wait(futures)
            except BaseException as again:
                _unsettled(again)
                raise
            raise
        for future in futures:
            err = future.exception()
            if err is not None:  # neither an Exception nor ``recorded``: ``one`` raised it
                raise err

    def race(
        self,
        names: Names,
        call: Callable[[str], T],
        discard: Callable[[T], None] | None,
        errors: dict[str, BaseException],
    ) -> tuple[str, T] | None:
        """Run ``call`` on every name at once; return the first good answer and its name.

        The slower ones run on (a thread cannot be stopped); ``discard`` releases what
        each returns when it comes. Each failure lands in ``errors``; None when all
        failed.
        """
        futures: dict[Future[T], str] = dict(
            zip(self.submit_all([partial(call, n) for n in names]), names, strict=True)
        )
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: names.index(futures[f])):
                    result, err = result_or_error(future)
                    if err is None:
                        if discard is not None:
                            for other in pending | (done - {future}):
                                other.add_done_callback(_discarder(discard))
                        return futures[future], result
                    errors[futures[future]] = err
        except BaseException:  # interrupted while racing: every answer is discarded
            if discard is not None:
                for future in futures:
                    future.add_done_callback(_discarder(discard))
            raise
        return None

    def fan_out(
        self, names: Names, depth: int, consume: Callable[[str, Iterator[bytes]], T]
    ) -> Fan[T]:
        """Start ``consume(name, feed)`` per name on its own thread; feed them through a Fan."""
        return Fan(self, names, depth, consume)


_crew = threading.local()


def _in_crew(one: Callable[[str], None], name: str) -> None:
    _crew.active = True
    try:
        one(name)
    finally:
        _crew.active = False


def recorded(error: BaseException) -> bool:
    """Whether a target's error that is no Exception is its outcome, not the caller's.

    On a pool thread it is (a ``SystemExit`` or a stray ``CancelledError`` from the
    target's own code): the change fails there and is rolled back like any other. A
    ``KeyboardInterrupt``, and any such error in the caller's thread (a sequential
    change), goes on to the caller.
    """
    return bool(getattr(_crew, "active", False)) and not isinstance(error, KeyboardInterrupt)


def settled(interruption: BaseException) -> bool:
    """Whether every target had stopped when ``interruption`` came, so a rollback is safe."""
    return not getattr(interruption, "_mirror_unsettled", False)


def _unsettled(interruption: BaseException) -> None:
    interruption._mirror_unsettled = True  # type: ignore[attr-defined]
    interruption.add_note(
        "mirror: interrupted while targets were still running; nothing was rolled back, "
        "so the targets may differ: check them before relying on the path"
    )


def _discarder(discard: Callable[[Any], None]) -> Callable[[Future[Any]], None]:
    def done(future: Future[Any]) -> None:
        result, err = result_or_error(future)
        if err is None:
            with contextlib.suppress(Exception):
                discard(result)

    return done


class Fan(Generic[T]):
    """One stream fed to a thread per target, each through its own bounded queue.

    ``put`` hands a chunk to every target still reading (waiting while a queue is
    full, unless its target has ended), ``finish`` ends every feed, ``abort`` makes
    each feed raise an error; ``outcome`` waits for the targets. ``stop`` (when the
    write is interrupted) aborts the feeds, waits for the threads and returns where
    the write landed.
    """

    def __init__(
        self,
        pool: SlotPool,
        names: Names,
        depth: int,
        consume: Callable[[str, Iterator[bytes]], T],
    ) -> None:
        self._names = list(names)
        self._queues = {n: queue.Queue[Any](maxsize=depth) for n in names}
        futures = pool.submit_all([partial(consume, n, self._feed(n)) for n in names])
        self._futures = dict(zip(names, futures, strict=True))
        self._live = set(names)

    def _feed(self, name: str) -> Iterator[bytes]:
        q = self._queues[name]
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def put(self, item: object) -> None:
        """Hand ``item`` to every target still reading (in order, one queue at a time)."""
        for name in self._names:
            while name in self._live:
                try:
                    self._queues[name].put(item, timeout=_FEED_POLL)
                    break
                except queue.Full:
                    if self._futures[name].done():
                        self._live.discard(name)

    def finish(self) -> None:
        """End every feed: the source is exhausted."""
        self.put(_END)

    def abort(self, error: BaseException) -> None:
        """Make every feed still read raise ``error``."""
        self.put(error)

    def failed(self) -> bool:
        """Whether a target has ended with an error."""
        return any(f.done() and f.exception() is not None for f in self._futures.values())

    def outcome(self) -> Outcome:
        """Wait for every target; return each one's result or error."""
        wait(list(self._futures.values()))
        return {n: result_or_error(f) for n, f in self._futures.items()}

    def stop(self, error: BaseException) -> Outcome:
        """Make every feed raise ``error``, wait for the threads; return where it landed.

        Each queue is emptied and given ``error`` without blocking first, so a second
        interruption during the wait cannot leave a thread waiting for a chunk.
        """
        for q in self._queues.values():
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            with contextlib.suppress(queue.Full):
                q.put_nowait(error)
        try:
            outcome = self.outcome()
        except BaseException as again:
            _unsettled(again)
            raise
        return {n: r for n, r in outcome.items() if r[1] is None}


# -- listings ---------------------------------------------------------------------------


def primed(listing: Iterator[T]) -> Primed[T]:
    """Fetch ``listing``'s first item now, so its errors surface inside the call."""
    return prime(listing)


def drop_listing(primed: Primed[Any]) -> None:
    """Close a primed listing nobody will read, if it can be closed."""
    close = getattr(primed, "close", None)
    if close is not None:
        close()


def listing(start: Callable[[], Primed[T]]) -> Iterator[T]:
    """The listing ``start`` fetches, started now: its errors surface at the call."""
    return start()
