"""Polling briefly before sleeping: the event loop stays awake a short while after an answer.

A process that answers a request and goes straight back to sleep in ``epoll_wait``
pays for the wake-up on the next one: measured on this project's 2-core virtual
machines, the same request handling takes 2.2x as long right after a 200 us sleep as
back to back (64 against 29 us; after a 200 us busy wait instead, 32 us;
``benchmarks/gateway_wakeup.py``), and the sequential 4 KiB rows of
``benchmarks/gateway.py`` were bound by it. Go's scheduler spins a while before it
parks a thread, so ``rclone serve s3`` rarely pays it. Here, once an answer has gone
out, the loop keeps polling its sockets without blocking for ``window`` seconds (a
callback that re-schedules itself, so every turn of the loop polls with a zero
timeout); a request that arrives meanwhile is served by a warm process. Each answer
restarts the window; when it runs out with nothing to do, the loop sleeps as before,
so an idle server spends nothing and a busy one spends at most one window after its
last answer.

The polling holds the GIL between its polls, so it would slow the store calls the
gateway runs in worker threads: it stops while any runs (``paused``, which
``ThreadLimiter`` enters around each call). Measured (benchmarks/README.md, "Session
9"): a sequential client's 4 KiB HEAD and GET 35-43% faster for about 20% more server
CPU per request. ``storager serve --busy-poll-us 0`` turns it off.

It is for a lone client waiting on each answer. Under concurrent requests the loop
has work in hand when it answers, and on a machine whose cores the clients share, the
polling takes CPU they need: 16 clients' 4 KiB HEADs ran 5-20% slower with it
(benchmarks/README.md, "Session 10"). So when another request is in progress as one is
answered, polling stops and stays off for ``QUIET`` seconds after the last such answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

__all__ = ["MAX_WINDOW", "BusyPoll", "paused", "poller_of"]

#: The longest window accepted (seconds): past it, polling is a busy server's idle CPU.
MAX_WINDOW = 0.01
#: Seconds without polling after an answer given while other requests were in progress.
QUIET = 0.01


class BusyPoll:
    """Keeps one event loop polling until ``window`` seconds after the last ``extend``,
    except while store calls run in threads (``held``) and while requests overlap
    (``began``/``answered``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float) -> None:
        if not 0 < window <= MAX_WINDOW:
            raise ValueError(f"the busy-poll window must be above 0 and at most {MAX_WINDOW} s")
        self.loop = loop
        self.window = window
        self.until = 0.0
        #: Whether a poll callback is scheduled (at most one per loop).
        self.polling = False
        #: Store calls running in worker threads: no polling while any does.
        self.held = 0
        #: Requests begun and not yet answered, over every connection of the loop.
        self.in_progress = 0
        #: No polling before this time (``time.perf_counter``): requests overlapped.
        self.quiet_until = 0.0

    def began(self) -> None:
        """A request's head arrived."""
        self.in_progress += 1

    def answered(self, *, more_may_come: bool) -> None:
        """A request was answered (``more_may_come``: its connection stays open).

        Polls after it unless other requests are in progress or were lately.
        """
        self.in_progress -= 1
        if self.in_progress > 0:
            self.quiet_until = time.perf_counter() + QUIET
            self.until = 0.0
        elif more_may_come and time.perf_counter() >= self.quiet_until:
            self.extend()

    def forget(self, requests: int) -> None:
        """A connection closed with ``requests`` of its requests never answered."""
        self.in_progress -= requests

    def extend(self) -> None:
        """Poll until ``window`` seconds from now (unless store calls are running)."""
        self.until = time.perf_counter() + self.window
        if not self.polling and not self.held:
            self.polling = True
            self.loop.call_soon(self._poll)

    def _poll(self) -> None:
        if not self.held and time.perf_counter() < self.until and not self.loop.is_closed():
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


class paused:
    """No polling on the running loop while the block runs (a store call in a thread).

    Costs a dictionary lookup where no poller exists (polling off, granian, tests
    driving the app directly).
    """

    __slots__ = ("_poller",)

    def __init__(self) -> None:
        self._poller = _pollers.get(asyncio.get_running_loop())

    def __enter__(self) -> None:
        if self._poller is not None:
            self._poller.held += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._poller is not None:
            self._poller.held -= 1
