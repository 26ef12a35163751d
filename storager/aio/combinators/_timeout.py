"""Timeout: give every operation a deadline, and never let a change land after it.

Written once: ``storager/aio/combinators/_timeout.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_timeout.py`` from it. The states
of a change and the lock that separates them are ``Deadline``'s
(``storager/combinators/_deadline.py``), shared by both forms; what differs is how a
call runs while the caller waits (``Jobs``). The sync form runs it on the wrapper's own
thread pool: Python cannot stop a thread, so a call that timed out keeps running in the
background. The async form runs it as a task and cancels the task at the deadline (a
native async store stops at its next await; a threaded view's thread finds the rest of
its data refused). What the caller is told depends on whether the change can still take
effect:

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
  the grace it raises OutcomeUnknownError. One that never started (in the sync form,
  every pool thread was busy) raises OperationTimeoutError and never runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import OutcomeUnknownError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter
from storager.aio.combinators._base import Call, call_child
from storager.aio.combinators._deadline import AsyncJob, AsyncJobs, async_deadline_stream
from storager.aio.combinators._delegate import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
)
from storager.combinators._base import MUTATING
from storager.combinators._deadline import Deadline, check_settings

__all__ = ["AsyncTimeout"]

T = TypeVar("T")

#: Changes to the store; signing a URL changes nothing.
_CHANGES = MUTATING - {"presign_write"}


class _Guarded:
    """A call whose data reaches the service through ``deadline``'s stream."""

    __slots__ = ("deadline", "run")

    def __init__(self, deadline: Deadline, run: Call[Any]) -> None:
        self.deadline = deadline
        self.run = run

    def __call__(self, store: AsyncStorager) -> Any:
        return self.run(store)


class AsyncTimeout(AsyncDelegate):
    """Give each operation a deadline; a change that times out never lands later.

    Args:
        inner: The store to wrap; its capabilities are kept.
        seconds: The deadline of every operation.
        per_op: Deadlines for particular operations (``{"read": 1.0}``); ``None``
            as a value means no deadline for that operation.
        workers: Threads in the sync form's pool (the async form runs each call as
            a task on the caller's loop).
        grace: Seconds a change that can no longer be stopped may take past its
            deadline before it is reported as OutcomeUnknownError (the async form
            cancels it then).

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
        inner: AsyncStorager,
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
        self._jobs = AsyncJobs(workers)

    def describe_label(self) -> str:
        return f"timeout {self.seconds:g}s"

    def _close(self) -> None:
        self._jobs.shutdown()

    def _seconds(self, op: str) -> float | None:
        return self.per_op.get(op, self.seconds)

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        seconds = self._seconds(op)
        if seconds is None:
            return await call_child(self._inner, op, path, fn)
        if isinstance(fn, _Guarded):
            deadline: Deadline | None = fn.deadline
        elif op in _CHANGES:
            deadline = Deadline(op, path, seconds, stoppable=False)
        else:
            deadline = None
        job: AsyncJob[T] = self._jobs.start(_started, deadline, self._inner, op, path, fn)
        if await job.finished(seconds):
            return job.result()
        if deadline is None:
            await job.cancel()
            raise Deadline(op, path, seconds, stoppable=True).timeout_error() from None
        if deadline.expire():
            await job.cancel()
            if job.succeeded():
                return job.result()  # it finished as the deadline passed
            raise deadline.timeout_error("nothing was changed") from None
        # Past its point of no return: wait ``grace`` for the outcome, else report it unknown.
        if await job.finished(self.grace):
            return job.result()
        await job.cancel()
        raise OutcomeUnknownError(
            op,
            "timeout",
            path,
            f"no answer within {seconds:g} s (+{self.grace:g} s grace) after the change "
            f"could no longer be stopped: {self._jobs.ABANDONED}; check before acting on it",
        ) from None

    async def _guarded(
        self,
        op: str,
        path: str,
        data: AsyncWriteData,
        pairs: dict[str, Any],
        run: Callable[[AsyncStorager, AsyncWriteData], Awaitable[T]],
    ) -> T:
        """Run a change whose data reaches the service through a deadline stream."""
        seconds = self._seconds(op)
        if seconds is None:
            return await self._call(op, path, lambda s: run(s, data))
        deadline = Deadline(op, path, seconds, stoppable=True)
        if isinstance(data, bytes | bytearray | memoryview) and pairs.get("size") is None:
            pairs["size"] = memoryview(data).nbytes  # the length the service would have seen
        stream = async_deadline_stream(deadline, data)
        return cast(T, await self._call(op, path, _Guarded(deadline, lambda s: run(s, stream))))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        p = self._path("write", path)
        obj = await self._guarded("write", path, data, pairs, lambda s, d: s.write(p, d, **pairs))
        return self._out(obj)


async def _started(
    deadline: Deadline | None, store: AsyncStorager, op: str, path: str, fn: Call[T]
) -> T:
    if deadline is not None:
        deadline.start()
    return await call_child(store, op, path, fn)


class _AsyncTimeoutSegmenter(AsyncDelegateSegmenter, AsyncTimeout):
    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        return await self._guarded(
            "write_multipart",
            multipart.path,
            data,
            pairs,
            lambda s, d: cast(AsyncSegmenter, s).write_multipart(multipart, number, d, **pairs),
        )


AsyncTimeout._capability_mixins = {**ASYNC_DELEGATE_MIXINS, Segmenter: _AsyncTimeoutSegmenter}
