"""Timeout: give every operation a deadline, and never let a change land after it.

The call runs on the wrapper's own thread pool while the caller waits at most the
deadline. Python cannot stop a thread, so a call that timed out keeps running in the
background; what the caller is told depends on whether it can still take effect:

- A read (``read``, ``open_reader``, ``stat``, ``list``...) raises
  :class:`~storager.OperationTimeoutError` (retryable); its late result is dropped.
- A change whose data can be refused (``write``, ``write_multipart``) reads its data
  through a :class:`~storager.combinators._deadline.DeadlineStream`. If the service is
  still reading the data at the deadline, the stream refuses the rest, the service
  aborts before its commit, and the caller gets OperationTimeoutError: nothing was,
  or will be, written. If the service already has all the data (it may commit at any
  moment), the caller waits up to ``grace`` seconds for the outcome, then gets
  :class:`~storager.OutcomeUnknownError` (never retryable).
- A change without data to refuse (``delete``, ``copy``, ``move``, ``append``,
  ``create_dir``, ``create_link``, ``create_multipart``, ``complete_multipart``,
  ``abort_multipart``) cannot be stopped once it has started: past the deadline and
  the grace it raises OutcomeUnknownError. One that never started (every pool thread
  was busy) raises OperationTimeoutError and never runs.

The states and the lock that separates them are in ``_deadline``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar, cast

from storager._errors import OutcomeUnknownError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, Storager, WriteData
from storager.combinators._base import (
    DELEGATE_MIXINS,
    MUTATING,
    Delegate,
    DelegateSegmenter,
    call_child,
)
from storager.combinators._deadline import Deadline, DeadlineStream, check_settings
from storager.combinators._trace import in_context

__all__ = ["Timeout"]

T = TypeVar("T")

#: Changes to the store; signing a URL changes nothing.
_CHANGES = MUTATING - {"presign_write"}


class _Guarded:
    """A call whose data reaches the service through ``deadline``'s stream."""

    __slots__ = ("deadline", "run")

    def __init__(self, deadline: Deadline, run: Callable[[Storager], Any]) -> None:
        self.deadline = deadline
        self.run = run

    def __call__(self, store: Storager) -> Any:
        return self.run(store)


class Timeout(Delegate):
    """Give each operation a deadline; a change that times out never lands later.

    Args:
        inner: The store to wrap; its capabilities are kept.
        seconds: The deadline of every operation.
        per_op: Deadlines for particular operations (``{"read": 1.0}``); ``None``
            as a value means no deadline for that operation.
        workers: Threads in the wrapper's pool.
        grace: Seconds a change that can no longer be stopped may take past its
            deadline before it is reported as OutcomeUnknownError.

    What the caller is told at the deadline:

    - reads: OperationTimeoutError (retryable);
    - ``write`` and ``write_multipart`` still reading their data: OperationTimeoutError,
      and the rest of the data is refused, so the service aborts before its commit;
    - ``write`` and ``write_multipart`` whose data the service has read in full (it
      may commit any moment, as a single-request PUT of a small object does), and
      every other change once started (``delete``, ``copy``, ``move``, ``append``,
      ``create_dir``, ``create_link``, ``create_multipart``, ``complete_multipart``,
      ``abort_multipart``): the outcome if it comes within ``grace``, else
      OutcomeUnknownError, which Retry does not retry, Failover does not switch on
      and Mirror reports without rolling back;
    - a change that never started (the pool was busy): OperationTimeoutError, and it
      never runs.

    A deadline covers the call: for ``open_reader``, opening; for ``list``, the
    first page. Put Timeout beneath Retry, Mirror and Failover: above them, a change
    reads its whole data before the first target commits, so the deadline can only
    report it unknown.
    """

    combinator = "timeout"

    def __init__(
        self,
        inner: Storager,
        seconds: float,
        *,
        per_op: Mapping[str, float | None] | None = None,
        workers: int = 8,
        grace: float = 0.0,
    ) -> None:
        super().__init__(inner)
        check_settings(seconds, per_op, grace)
        self.seconds = seconds
        self.per_op = dict(per_op or {})
        self.grace = float(grace)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storager-timeout")

    def describe_label(self) -> str:
        return f"timeout {self.seconds:g}s"

    def _close(self) -> None:
        # Queued calls still run: their callers wait for them, and a cancelled future
        # would hand them a bare CancelledError (or strand a wait() for good).
        self._pool.shutdown(wait=False)

    def _seconds(self, op: str) -> float | None:
        return self.per_op.get(op, self.seconds)

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        seconds = self._seconds(op)
        if seconds is None:
            return call_child(self._inner, op, path, fn)
        if isinstance(fn, _Guarded):
            deadline: Deadline | None = fn.deadline
        elif op in _CHANGES:
            deadline = Deadline(op, path, seconds, stoppable=False)
        else:
            deadline = None
        future: Future[T]
        if deadline is None:
            future = self._pool.submit(in_context(call_child), self._inner, op, path, fn)
        else:
            future = self._pool.submit(in_context(_started), deadline, self._inner, op, path, fn)
        try:
            return future.result(timeout=seconds)
        except FutureTimeout:
            pass
        if deadline is None:
            future.cancel()
            raise Deadline(op, path, seconds, stoppable=True).timeout_error() from None
        if deadline.expire():
            future.cancel()
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # it finished as the deadline passed
            raise deadline.timeout_error("nothing was changed") from None
        return self._settle(deadline, future)

    def _settle(self, deadline: Deadline, future: Future[T]) -> T:
        """Wait ``grace`` for a change past its point of no return, else report it unknown."""
        try:
            return future.result(timeout=self.grace)
        except FutureTimeout:
            raise OutcomeUnknownError(
                deadline.op,
                "timeout",
                deadline.path,
                f"no answer within {deadline.seconds:g} s (+{self.grace:g} s grace) after "
                "the change could no longer be stopped: it may have taken effect, or may "
                "yet; check before acting on it",
            ) from None

    def _guarded(
        self,
        op: str,
        path: str,
        data: WriteData,
        pairs: dict[str, Any],
        run: Callable[[Storager, WriteData], T],
    ) -> T:
        """Run a change whose data passes through a deadline stream."""
        seconds = self._seconds(op)
        if seconds is None:
            return self._call(op, path, lambda s: run(s, data))
        deadline = Deadline(op, path, seconds, stoppable=True)
        if isinstance(data, bytes | bytearray | memoryview) and pairs.get("size") is None:
            # Keep telling the service the length it would have seen.
            pairs["size"] = memoryview(data).nbytes
        stream = DeadlineStream(deadline, data)
        return cast(T, self._call(op, path, _Guarded(deadline, lambda s: run(s, stream))))

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        p = self._path("write", path)
        return self._out(
            self._guarded("write", path, data, pairs, lambda s, d: s.write(p, d, **pairs))
        )


def _started(
    deadline: Deadline, store: Storager, op: str, path: str, fn: Callable[[Storager], T]
) -> T:
    deadline.start()
    return call_child(store, op, path, fn)


class _TimeoutSegmenter(DelegateSegmenter, Timeout):
    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        return self._guarded(
            "write_multipart",
            multipart.path,
            data,
            pairs,
            lambda s, d: cast(Segmenter, s).write_multipart(multipart, number, d, **pairs),
        )


Timeout._capability_mixins = {**DELEGATE_MIXINS, Segmenter: _TimeoutSegmenter}
