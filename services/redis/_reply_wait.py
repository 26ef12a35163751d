"""Waiting for a reply: poll the socket briefly before sleeping in ``recv``.

A thread that sends a command and blocks in ``recv`` sleeps until the reply comes; on
this project's 2-core virtual machines a sleeping vCPU is halted at once, and waking
it costs more than a small command does on a local server: measured, a sequential 4
KiB read or stat ran 1.4-1.9x as fast when the thread polled the socket until the
reply arrived, for the same client CPU per call (the wake-up is CPU too;
``benchmarks/README.md``, "Session 10"). The gateway meets the same effect from the
server's side (``storager.gateway._busy_poll``).

So after sending, a thread polls its socket (``poll`` with a zero timeout, which lets
go of the GIL at each call) for up to ``window`` seconds, then blocks as before. It is
adaptive, so a server farther away costs one window now and then: a reply that does
not come within the window turns polling off, and only a reply that comes within the
window even to a sleeping thread turns it on again. It also gives way while other
requests are in flight or queued on the link (``crowded``): their threads need the
GIL, and their requests keep the server's answers coming anyway.
``busy_poll_us=0`` turns it off, as does a platform without ``select.poll``.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_WINDOW", "MAX_WINDOW", "ReplyWait"]

#: Seconds a thread polls for a reply before it sleeps, unless told otherwise.
DEFAULT_WINDOW = 100e-6
#: The longest window accepted: past it, polling is CPU spent on a slow server.
MAX_WINDOW = 0.01


class ReplyWait:
    """How one link's threads wait for their replies (shared by them: its state is one
    flag, whose races cost at most one window or one wake-up)."""

    def __init__(self, window: float) -> None:
        if not 0 <= window <= MAX_WINDOW:
            raise ValueError(f"the busy-poll window must be 0 to {MAX_WINDOW} s")
        self.window = window if hasattr(select, "poll") else 0.0
        #: Whether replies have lately come within the window.
        self.polling = self.window > 0

    def poll(self, sock: Any, crowded: Callable[[], bool]) -> float | None:
        """Poll ``sock`` (just written to) until it is readable, the window ends, or
        ``crowded()``.

        Returns:
            The time (``time.perf_counter``) the wait began when polling was off: the
            caller hands it to :meth:`slept` once the reply has been read, to learn
            whether polling should be on again. None otherwise.
        """
        if not self.polling:
            return time.perf_counter() if self.window else None
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        deadline = time.perf_counter() + self.window
        while not poller.poll(0):
            if crowded():
                return None
            if time.perf_counter() >= deadline:
                self.polling = False  # the server is slower than the window
                return None
        return None

    def slept(self, began: float) -> None:
        """A reply was read by a thread that slept: poll again if it came within the
        window all the same."""
        if time.perf_counter() - began <= self.window:
            self.polling = True
