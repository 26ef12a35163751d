"""Auto-pipelining: the small requests of many threads share round trips.

A thread with a small request (one command, or a commit's transaction) sends it at
once when no other thread is sending: it becomes the leader for that one round trip.
Threads that arrive while a leader is sending queue their requests; when the leader
is done, it hands the lead to the first of them, which sends everything queued so far
as one batch (one write, the replies read in order) and hands the lead on in turn. No
thread leads more than one batch, and a thread alone (sequential use) pays two
uncontended lock operations.

Why: many threads each on a socket of its own spend most of their time handing the
GIL over around each send and receive, and the server answers one small read and
write per request; a batch costs one send, one receive and one wake-up per waiting
thread, and the server serves it with one read and one write
(``benchmarks/redis_peers.py`` measures the 16-thread rows). A batch is sent on one
connection and answered in order, so Redis's guarantees hold: a request's commands
stay together (a ``MULTI``...``EXEC`` is never split), and each thread still sees its
own requests in the order it made them.
"""

from __future__ import annotations

import _thread
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from redis import exceptions as rx

__all__ = ["Buffer", "Lane"]

Buffer = bytes | bytearray | memoryview

#: A batch's buffers are joined into one send up to this many bytes.
_JOIN_LIMIT = 256 << 10


class _Request:
    """A queued request: its packed commands, then its replies or error."""

    __slots__ = ("answered", "buffers", "count", "done", "error", "lead", "replies")

    def __init__(self, buffers: list[Buffer], count: int) -> None:
        self.buffers = buffers
        self.count = count
        self.replies: list[Any] | None = None
        self.error: BaseException | None = None
        #: Set when a finishing leader hands this request's thread the lead.
        self.lead = False
        #: Set by the leader once it has released ``done`` for this request's answer.
        self.answered = False
        #: Held until the request is answered or handed the lead.
        self.done = _thread.allocate_lock()
        self.done.acquire()


class Lane:
    """Round trips of small requests, batched across threads.

    Args:
        round_trip: Sends packed commands on one connection and returns the replies
            (``count`` of them, error replies in place as ``ResponseError``).
        wait: How long a queued request may wait to be sent before it fails (seconds).
    """

    def __init__(self, round_trip: Callable[[list[Buffer], int], list[Any]], wait: float):
        self._round_trip = round_trip
        self._wait = wait
        self.reset()

    def reset(self) -> None:
        """Start empty (in a forked child: the parent's queue and locks are the parent's)."""
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        #: Held by the one thread that is sending (the leader).
        self._sending = threading.Lock()

    def crowded(self) -> bool:
        """Whether requests are queued behind the one being sent."""
        return bool(self._queue)

    def exchange(self, buffers: list[Buffer], count: int) -> list[Any]:
        """Send the packed commands ``buffers`` (``count`` of them); return their replies.

        An error reply stays in its place as a ``ResponseError``.

        Raises:
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError: The round
                trip that carried the request failed (every request of a failed batch
                gets its error, whether or not the server ran it).
            redis.exceptions.MaxConnectionsError: The request waited ``wait`` seconds
                without being sent (it never reached the server).
        """
        if self._sending.acquire(blocking=False):
            try:
                return self._round_trip(buffers, count)
            finally:
                self._hand_on()
        request = _Request(buffers, count)
        try:
            with self._queue_lock:
                self._queue.append(request)
            if self._sending.acquire(blocking=False):
                # The leader finished between our two looks: lead (our request was
                # either still queued, or sent and answered by that leader already).
                try:
                    self._lead()
                finally:
                    self._hand_on()
            else:
                self._await(request)
                if request.lead:
                    try:
                        request.lead = False  # ours now: handed on below, never twice
                        self._lead()
                    finally:
                        self._hand_on()
        except BaseException:
            # Interrupted anywhere: our request leaves the queue, and the lead goes on
            # if it was handed to us after our own hand-on.
            self._abandon(request)
            raise
        if request.error is not None:
            raise request.error
        assert request.replies is not None
        return request.replies

    def _await(self, request: _Request) -> None:
        """Wait until ``request`` is answered or its thread is handed the lead."""
        try:
            if request.done.acquire(timeout=self._wait):
                return
            with self._queue_lock:
                if not request.lead and request in self._queue:
                    self._queue.remove(request)
                    raise rx.MaxConnectionsError(
                        "No connection available: the shared connection stayed busy"
                    )
            # A leader has it in flight (its socket timeout bounds the wait), or hands
            # us the lead (then the lock is already free).
            request.done.acquire()
        except BaseException:
            self._abandon(request)
            raise

    def _abandon(self, request: _Request) -> None:
        """Forget the request of a thread that stops waiting (interrupted, timed out).

        A queued request leaves the queue; if its thread was handed the lead, the lead
        goes on to the next one, so the lane never stays held by a thread that left.
        A request already in flight is answered to nobody.
        """
        with self._queue_lock:
            if request in self._queue:
                self._queue.remove(request)
            handed = request.lead
            request.lead = False
        if handed:
            self._hand_on()

    def _lead(self) -> None:
        """Send everything queued as one batch (this thread holds ``_sending``; the
        caller hands it on in a ``finally``).

        Whatever stops the leader (an error, or an exception raised in its thread from
        outside, such as KeyboardInterrupt from a signal), every request of the batch is
        answered or failed and released.
        """
        batch: list[_Request] = []
        try:
            with self._queue_lock:
                batch, self._queue = self._queue, []
            if batch:
                self._send(batch)
        except BaseException as exc:
            self._fail_unanswered(batch, exc)
            if isinstance(exc, Exception):
                return  # every request of the batch carries it
            raise  # the leader's thread was interrupted: in that thread only

    def _send(self, batch: list[_Request]) -> None:
        buffers = [buffer for request in batch for buffer in request.buffers]
        if len(buffers) > 1 and sum(len(buffer) for buffer in buffers) <= _JOIN_LIMIT:
            buffers = [b"".join(buffers)]
        replies = self._round_trip(buffers, sum(request.count for request in batch))
        start = 0
        for request in batch:
            request.replies = replies[start : start + request.count]
            start += request.count
            request.done.release()
            request.answered = True

    @staticmethod
    def _fail_unanswered(batch: list[_Request], exc: BaseException) -> None:
        """Release every request of ``batch`` not released yet: with its replies if it
        has them already, else with ``exc`` (a ConnectionError if ``exc`` is not an
        ``Exception``: an interruption of the leader's thread is no error of theirs)."""
        error = exc
        if not isinstance(exc, Exception):
            error = rx.ConnectionError(f"the batch was cut short ({type(exc).__name__})")
        for request in batch:
            if request.answered:
                continue
            if request.replies is None:
                request.error = error
            request.answered = True
            # Released just before the interruption, not yet marked answered: no matter.
            with contextlib.suppress(RuntimeError):
                request.done.release()

    def _hand_on(self) -> None:
        """Let go of the lead: to the first queued request's thread, or to nobody.

        ``_sending`` is released before the queue is looked at, so a thread that
        queued after the look finds it free and leads itself; no request is left
        waiting with nobody sending.
        """
        while True:
            self._sending.release()
            if not self._queue or not self._sending.acquire(blocking=False):
                return
            with self._queue_lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.release()
                    return  # the successor's thread holds _sending now
