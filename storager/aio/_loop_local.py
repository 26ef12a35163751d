"""One client per running event loop, made on first use and closed with its loop.

Async HTTP clients (aiohttp sessions, and the SDKs and fsspec file systems built on
them) belong to the loop they were made in: used from another loop they fail with
"attached to a different loop" or hang. A native async store therefore keeps one client
per loop in a :class:`LoopLocal`, looked up by the running loop on every call, so one
store works from several ``asyncio.run()`` calls and from loops in several threads.

A client is closed on its own loop, by whichever comes first:

- the loop's end: ``asyncio.run`` (and every loop that calls ``shutdown_asyncgens``)
  closes the async generators it started before it closes, and each client is held
  open by one of them (:func:`_held_open`);
- ``LoopLocal.aclose()`` (the store's ``close``): the caller's loop's client at once,
  those of loops still running in other threads on their loop, with a time limit.

A loop closed without ``shutdown_asyncgens`` cannot run the close any more: its client
is dropped (its sockets are freed with it) the next time the store looks for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LoopLocal"]

logger = logging.getLogger("storager.aio")

T = TypeVar("T")

#: Seconds ``aclose`` waits for another loop to close its client.
_OTHER_LOOP_CLOSE_TIMEOUT = 5.0


@dataclass(eq=False)
class _Entry(Generic[T]):
    """A loop's client, or the task still making it, and what holds it open."""

    making: asyncio.Future[T]
    keeper: AsyncGenerator[None, None] | None = None


class LoopLocal(Generic[T]):
    """Hold one ``T`` per running event loop; see the module docstring.

    Args:
        make: Makes the client; awaited on the loop that will use it.
        close: Closes a client; awaited on the client's own loop.
    """

    def __init__(
        self, make: Callable[[], Awaitable[T]], close: Callable[[T], Awaitable[None]]
    ) -> None:
        self._make = make
        self._close = close
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry[T]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        """Return how many loops hold a client now."""
        return len(self._entries)

    async def get(self) -> T:
        """Return the running loop's client, making it on first use."""
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is not None and entry.making.done():
            return entry.making.result()
        with self._lock:
            self._drop_closed_loops()
            entry = self._entries.get(loop)
            if entry is None:
                entry = _Entry(loop.create_future())
                self._entries[loop] = entry
                owner = True
            else:
                owner = False
        if not owner:
            return await asyncio.shield(entry.making)
        try:
            client = await self._make()
        except BaseException as exc:
            with self._lock:
                if self._entries.get(loop) is entry:
                    del self._entries[loop]
            entry.making.set_exception(exc)
            entry.making.exception()  # retrieved: the owner re-raises it
            raise
        keeper = _held_open(client, self._close, lambda: self._forget(loop, entry))
        await keeper.__anext__()  # registered with the loop: closed by shutdown_asyncgens
        entry.keeper = keeper
        entry.making.set_result(client)
        return client

    async def aclose(self) -> None:
        """Close every loop's client: this loop's now, other running loops' on them."""
        with self._lock:
            entries = list(self._entries.items())
            self._entries.clear()
        current = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for loop, entry in entries:
            keeper = entry.keeper
            if keeper is None:
                continue
            if loop is current:
                await _close_keeper(keeper)
            elif loop.is_running() and not loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(_close_keeper(keeper), loop)
                waits.append(asyncio.wrap_future(future))
        if waits:
            _, pending = await asyncio.wait(waits, timeout=_OTHER_LOOP_CLOSE_TIMEOUT)
            if pending:
                logger.debug("%d client(s) of other loops did not close in time", len(pending))

    def _forget(self, loop: asyncio.AbstractEventLoop, entry: _Entry[T]) -> None:
        with self._lock:
            if self._entries.get(loop) is entry:
                del self._entries[loop]

    def _drop_closed_loops(self) -> None:
        for loop in [loop for loop in self._entries if loop.is_closed()]:
            logger.debug("dropping the client of a loop closed without shutdown_asyncgens")
            del self._entries[loop]


async def _held_open(
    client: T, close: Callable[[T], Awaitable[None]], forget: Callable[[], None]
) -> AsyncGenerator[None]:
    """Hold ``client`` open until the generator is closed (at the latest by its loop)."""
    try:
        yield
    finally:
        forget()
        try:
            await close(client)
        except Exception as exc:  # closing must not fail the loop's shutdown
            logger.debug("closing a loop's client failed: %s", type(exc).__name__)


async def _close_keeper(keeper: AsyncGenerator[None, None]) -> None:
    with contextlib.suppress(Exception):
        await keeper.aclose()
