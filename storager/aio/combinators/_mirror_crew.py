"""How an AsyncMirror runs its targets at once, as tasks: the async form's seams.

The Mirror is written once, async (``_mirror.py``, ``_mirror_write.py``,
``_mirror_multipart.py`` here); ``python -m codegen`` derives the sync Mirror from it.
Where the two worlds truly differ, the source calls what this module defines, and the
sync form calls what ``storager/combinators/_mirror_crew.py`` defines under the same
names without their async spelling:

- :class:`AsyncCrew` (sync: ``Crew``, the Mirror's thread pool) runs a call on every
  target at once (``each``), races a read (``race``: the first good answer wins; the
  losers are cancelled here, and what they opened, a reader, is released), and feeds
  one stream to every target (``fan_out``: an :class:`AsyncFan` of bounded queues);
- :func:`async_listing`, :func:`async_primed`, :func:`async_drop_listing`: a listing
  that starts on its first ``anext`` (sync: at the call) and is closed when the caller
  stops early;
- :func:`async_chunks`: a write's data in chunks (sync: ``iter_chunks``);
- ``Interrupted``: what stops a change midway, a cancellation here (sync: a
  ``KeyboardInterrupt``); the Mirror then rolls the change back where it landed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from storager.aio._native import async_chunks
from storager.aio.combinators._base import _END, _prime
from storager.combinators._mirror_policy import Names, Outcome

__all__ = [
    "AsyncCrew",
    "AsyncFan",
    "AsyncPrimed",
    "Interrupted",
    "async_chunks",
    "async_drop_listing",
    "async_listing",
    "async_primed",
    "recorded",
    "settled",
]

T = TypeVar("T")

#: What stops a change midway: the Mirror rolls it back where it landed, then re-raises.
Interrupted = asyncio.CancelledError


def settled(interruption: BaseException) -> bool:
    """Whether every target had stopped when ``interruption`` came: here, always."""
    return True


def recorded(error: BaseException) -> bool:
    """Whether a target's error that is no Exception is its outcome, not the caller's.

    Here none is: a cancellation goes on to the caller.
    """
    return False


#: A listing whose first item is fetched: ``(first or _END, the rest)``.
AsyncPrimed = tuple[object, AsyncIterator[T]]


class AsyncCrew:
    """Where an AsyncMirror runs its targets at once: tasks on the caller's loop.

    ``size`` is the sync form's pool size (threads); a task needs no thread.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def shutdown(self) -> None:
        """Nothing to release: tasks belong to their loops."""

    async def each(
        self, names: Names, one: Callable[[str], Awaitable[None]], *, settle: bool
    ) -> None:
        """Run ``one(name)`` for every name at once; ``one`` records its own outcome.

        Cancelled, the tasks are cancelled too and have stopped when this raises
        (``settle`` asks the sync form to wait for its threads; tasks always stop).
        """
        await asyncio.gather(*(one(n) for n in names))

    async def race(
        self,
        names: Names,
        call: Callable[[str], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None,
        errors: dict[str, BaseException],
    ) -> tuple[str, T] | None:
        """Run ``call`` on every name at once; return the first good answer and its name.

        The slower ones are cancelled once one answers, and ``discard`` releases what
        any loser returned all the same; when the race itself is cancelled, the winner's
        answer is discarded too. Each failure lands in ``errors``; None when all failed.
        """
        tasks = {asyncio.ensure_future(call(n)): n for n in names}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: names.index(tasks[t])):
                    err = task.exception()
                    if err is None:
                        result = task.result()
                        others = [t for t in done if t is not task]
                        try:
                            await _settle_losers(others, pending, discard)
                        except BaseException:  # cancelled while the losers stop
                            if discard is not None:
                                with contextlib.suppress(Exception):
                                    await discard(result)
                            raise
                        return tasks[task], result
                    errors[tasks[task]] = err
            return None
        finally:
            if pending:  # cancelled while racing: the losers go too
                await _settle_losers([], pending, discard)

    def fan_out(
        self,
        names: Names,
        depth: int,
        consume: Callable[[str, AsyncIterator[bytes]], Awaitable[T]],
    ) -> AsyncFan[T]:
        """Start ``consume(name, feed)`` per name as a task; feed them through an AsyncFan."""
        return AsyncFan(names, depth, consume)


async def _settle_losers(
    done: Sequence[asyncio.Future[Any]],
    pending: set[Any],
    discard: Callable[[Any], Awaitable[None]] | None,
) -> None:
    """Cancel the racers still running; release what any loser opened (a reader).

    A loser leaves ``pending`` as it is released, so a second call after a
    cancellation releases only the ones the first did not reach.
    """
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    losers: list[asyncio.Future[Any]] = [*done, *pending]
    for task in losers:
        pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            continue
        if discard is not None:
            with contextlib.suppress(Exception):
                await discard(task.result())


class AsyncFan(Generic[T]):
    """One stream fed to a task per target, each through its own bounded queue.

    ``put`` hands a chunk to every target still reading (waiting while a queue is
    full, unless its target has ended), ``finish`` ends every feed, ``abort`` makes
    each feed raise an error; ``outcome`` waits for the targets. ``stop`` (when the
    write is cancelled) cancels them and returns where the write landed.
    """

    def __init__(
        self,
        names: Names,
        depth: int,
        consume: Callable[[str, AsyncIterator[bytes]], Awaitable[T]],
    ) -> None:
        self._names = list(names)
        self._queues = {n: asyncio.Queue[Any](maxsize=depth) for n in names}
        self._tasks = {n: asyncio.ensure_future(consume(n, self._feed(n))) for n in names}
        self._live = set(names)

    async def _feed(self, name: str) -> AsyncIterator[bytes]:
        q = self._queues[name]
        while True:
            item = await q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def put(self, item: object) -> None:
        """Hand ``item`` to every target still reading (in order, one queue at a time)."""
        for name in self._names:
            if name not in self._live:
                continue
            q, task = self._queues[name], self._tasks[name]
            if task.done():
                self._live.discard(name)
            elif not q.full():
                q.put_nowait(item)
            else:
                putter = asyncio.ensure_future(q.put(item))
                try:
                    await asyncio.wait({putter, task}, return_when=asyncio.FIRST_COMPLETED)
                finally:  # the consumer ended first, or the write was cancelled
                    if not putter.done():
                        putter.cancel()
                        self._live.discard(name)

    async def finish(self) -> None:
        """End every feed: the source is exhausted."""
        await self.put(_END)

    async def abort(self, error: BaseException) -> None:
        """Make every feed still read raise ``error``."""
        await self.put(error)

    def failed(self) -> bool:
        """Whether a target has ended with an error."""
        return any(t.done() and _error(t) is not None for t in self._tasks.values())

    async def outcome(self) -> Outcome:
        """Wait for every target; return each one's result or error."""
        await asyncio.wait(self._tasks.values())
        return {n: (_result(t), _error(t)) for n, t in self._tasks.items()}

    async def stop(self, error: BaseException) -> Outcome:
        """Cancel every target (``error`` is the sync form's); return where it landed."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.wait(self._tasks.values())
        return {n: (_result(t), None) for n, t in self._tasks.items() if _error(t) is None}


def _error(task: asyncio.Future[Any]) -> BaseException | None:
    """The error a finished task ended with (a cancelled one: CancelledError)."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


def _result(task: asyncio.Future[Any]) -> Any:
    return None if _error(task) is not None else task.result()


# -- listings ---------------------------------------------------------------------------


async def async_primed(listing: AsyncIterator[T]) -> AsyncPrimed[T]:
    """Fetch ``listing``'s first item now, so its errors surface inside the call."""
    return await _prime(listing)


async def async_drop_listing(primed: AsyncPrimed[Any]) -> None:
    """Close a primed listing nobody will read (a race's loser)."""
    await _aclose(primed[1])


def async_listing(start: Callable[[], Awaitable[AsyncPrimed[T]]]) -> AsyncIterator[T]:
    """The listing ``start`` fetches, started on the first ``anext``.

    The target's listing is closed when the caller stops early (``aclose``), not
    left to a garbage collector hook.
    """

    async def listing() -> AsyncIterator[T]:
        first, rest = await start()
        async with contextlib.aclosing(_Closing(rest)):
            if first is _END:
                return
            yield cast(T, first)
            async for item in rest:
                yield item

    return listing()


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async iterator that can be closed (an async generator)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class _Closing:
    """What ``contextlib.aclosing`` needs around any async iterator: an ``aclose``."""

    def __init__(self, iterator: AsyncIterator[Any]) -> None:
        self._iterator = iterator

    async def aclose(self) -> None:
        await _aclose(self._iterator)
