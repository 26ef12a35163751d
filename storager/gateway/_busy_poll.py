"""Polling briefly before sleeping: the event loop stays awake a short while after an answer.

A process that answers a request and goes straight back to sleep in ``epoll_wait``
pays for the wake-up on the next one: measured on this project's 2-core virtual
machines, the same request handling takes 2.2x as long right after a 200 us sleep as
back to back (64 against 29 us; after a 200 us busy wait instead, 32 us), and the
sequential 4 KiB rows of ``benchmarks/gateway.py`` were bound by it. Go's scheduler
spins a while before it parks a thread, so ``rclone serve s3`` rarely pays it. Here,
once an answer has gone out, the loop keeps polling its sockets without blocking for
``window`` seconds (a callback that re-schedules itself, so every turn of the loop
polls with a zero timeout); a request that arrives meanwhile is served by a warm
process. Each answer restarts the window; when it runs out with nothing to do, the
loop sleeps as before, so an idle server spends nothing and a busy one spends at most
one window after its last answer. Measured (benchmarks/README.md, "Session 9"): a
sequential client's 4 KiB HEAD and GET 35-41% faster for about 20% more server CPU per
request. ``storager serve --busy-poll-us 0`` turns it off.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["BusyPoll", "BusyPollingHttpTools", "poller_of"]


class BusyPoll:
    """Keeps one event loop polling until ``window`` seconds after the last ``extend``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float) -> None:
        if window <= 0:
            raise ValueError("the busy-poll window must be positive")
        self.loop = loop
        self.window = window
        self._until = 0.0
        #: Whether a poll callback is scheduled (at most one per loop).
        self.polling = False

    def extend(self) -> None:
        """Poll until ``window`` seconds from now."""
        self._until = time.perf_counter() + self.window
        if not self.polling:
            self.polling = True
            self.loop.call_soon(self._poll)

    def _poll(self) -> None:
        if time.perf_counter() < self._until and not self.loop.is_closed():
            self.loop.call_soon(self._poll)
        else:
            self.polling = False


_pollers: dict[asyncio.AbstractEventLoop, BusyPoll] = {}
_pollers_lock = threading.Lock()


def poller_of(loop: asyncio.AbstractEventLoop, window: float) -> BusyPoll:
    """The loop's poller (one per event loop: uvicorn runs one per process, and a
    process serving from several threads has one per server)."""
    poller = _pollers.get(loop)
    if poller is None:
        with _pollers_lock:
            for gone in [one for one in _pollers if one.is_closed()]:
                del _pollers[gone]
            poller = _pollers.setdefault(loop, BusyPoll(loop, window))
    return poller


class BusyPollingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol; its loop polls a while after each answer.

    uvicorn builds it with its own arguments; give the window with
    ``functools.partial(BusyPollingHttpTools, busy_poll_window=...)`` (a partial of a
    module-level class: ``--workers`` pickles it to its worker processes).
    """

    def __init__(self, *args: Any, busy_poll_window: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._busy_poll = poller_of(self.loop, busy_poll_window)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._busy_poll.extend()
