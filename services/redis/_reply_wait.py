"""Waiting for a reply: poll the socket briefly before sleeping in ``recv``.

A thread that sends a command and blocks in ``recv`` sleeps until the reply comes; on
this project's 2-core virtual machines a sleeping vCPU is halted at once, and waking
it costs more than a small command does on a local server: measured, a sequential 4
KiB read took 115 us with a blocking ``recv`` and 60-75 us when the thread polled the
socket until the reply arrived, for the same client CPU per read (the wake-up is CPU
too; ``benchmarks/README.md``, "Session 10" under Redis). The gateway meets the same
effect from the server's side (``storager.gateway._busy_poll``).

So after sending, a thread polls its socket (``poll`` with a zero timeout, which lets
go of the GIL at each call) for up to ``window`` seconds, then blocks as before. It is
adaptive, so a server farther away costs nothing but the first window: a reply that
did not come within the window turns polling off, and a reply that comes, while
blocking, within twice the window turns it on again. ``busy_poll_us=0`` turns it off.
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
        self.window = window
        #: Whether replies have lately come within the window.
        self.polling = window > 0

    def poll(self, sock: Any, crowded: Callable[[], bool]) -> float | None:
        """Poll ``sock`` (just written to) until it is readable, the window ends, or
        ``crowded()`` (other threads wait their turn: polling would hold the GIL they
        need, and their requests keep the server busy anyway).

        Returns:
            None if a reply is ready; otherwise the time (``time.perf_counter``) the
            wait began, to hand to :meth:`slept` once the reply has been read.
        """
        began = time.perf_counter()
        if not self.polling:
            return began
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        deadline = began + self.window
        while not poller.poll(0):
            if crowded():
                return began
            if time.perf_counter() >= deadline:
                self.polling = False  # the server is slower than the window
                return began
        return None

    def slept(self, began: float) -> None:
        """A reply was read after blocking; poll again if it came soon enough."""
        if self.window and time.perf_counter() - began <= 2 * self.window:
            self.polling = True
