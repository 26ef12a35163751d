"""The deadline of one change, shared by Timeout and the stream it feeds to the service.

A change through :class:`~storager.combinators.Timeout` runs on a pool thread while
the caller waits. Python cannot stop that thread, so the change is made stoppable
instead: its data reaches the service only through a :class:`DeadlineStream`, and
every service commits a write (fs and sftp rename, s3 and azblob multipart complete,
memory's swap) only after it has read its data to the end. A :class:`Deadline`,
shared by the stream and the waiting caller under one lock, decides which side wins:

``streaming``
    The service is still reading. At the deadline the caller marks the change
    ``expired`` and reports a clean :class:`~storager.OperationTimeoutError`; the
    stream then raises on the service's next read, so nothing is committed.
``committing``
    The stream handed over its last chunk (it reads one chunk ahead to know which
    is last), or the change has no data to stop (delete, copy, move...) and has
    started. From here the service may commit at any moment, so the caller waits
    for the outcome up to a grace period, then reports
    :class:`~storager.OutcomeUnknownError`, which is never retried.
``expired``
    The caller was told the change failed; the stream refuses to move on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar

from storager._errors import InvalidArgumentError, OperationTimeoutError
from storager._protocols import WriteData
from storager._streams import CHUNK_SIZE, iter_chunks
from storager.combinators._trace import in_context

__all__ = [
    "COMMITTING",
    "EXPIRED",
    "PENDING",
    "STREAMING",
    "Deadline",
    "DeadlineStream",
    "Job",
    "Jobs",
    "check_settings",
    "deadline_stream",
]

T = TypeVar("T")

#: Not started yet: nothing can have happened.
PENDING = "pending"
#: Reading its data: can still be stopped.
STREAMING = "streaming"
#: Past the point where it can be stopped.
COMMITTING = "committing"
#: Reported as timed out: must not take effect.
EXPIRED = "expired"


class Deadline:
    """The state of one change: who may still decide its outcome.

    Args:
        op: The operation, for error messages.
        path: The path, for error messages.
        seconds: The deadline, for error messages.
        stoppable: Whether the change reads its data through a DeadlineStream
            (a change without one is past the point of no return once it starts).
    """

    __slots__ = ("_lock", "op", "path", "seconds", "state", "stoppable")

    def __init__(self, op: str, path: str, seconds: float, *, stoppable: bool) -> None:
        self._lock = threading.Lock()
        self.op = op
        self.path = path
        self.seconds = seconds
        self.stoppable = stoppable
        self.state = PENDING

    def start(self) -> None:
        """Mark the call as started on its thread; raise if the caller already gave up."""
        with self._lock:
            if self.state == EXPIRED:
                raise self.timeout_error("the call had not started")
            if self.state == PENDING:
                self.state = STREAMING if self.stoppable else COMMITTING

    def expire(self) -> bool:
        """Give up on the change if it can still be stopped; return whether it was."""
        with self._lock:
            if self.state in (PENDING, STREAMING, EXPIRED):
                self.state = EXPIRED
                return True
            return False

    def commit(self) -> None:
        """Move past the point of no return; raise if the caller already gave up."""
        with self._lock:
            if self.state == EXPIRED:
                raise self.timeout_error("the data was refused after the deadline")
            self.state = COMMITTING

    def check(self) -> None:
        """Raise if the caller already gave up."""
        if self.state == EXPIRED:
            raise self.timeout_error("the data was refused after the deadline")

    def timeout_error(self, why: str = "") -> OperationTimeoutError:
        """Return the clean timeout error: the change did not and will not happen."""
        reason = f"no answer within {self.seconds:g} s"
        return OperationTimeoutError(
            self.op, "timeout", self.path, f"{reason}; {why}" if why else reason
        )


class DeadlineStream(Iterator[bytes]):
    """Chunks of a change's data, refused once its Deadline expired.

    The stream reads one chunk ahead, so it knows the last chunk before handing it
    over: it moves the deadline to ``committing`` first, which is the one moment the
    service could otherwise commit while the caller is told the change failed.
    Bytes are cut into chunks of ``chunk_size``, so a large payload is stoppable too.
    """

    def __init__(
        self, deadline: Deadline, data: WriteData, *, chunk_size: int = CHUNK_SIZE
    ) -> None:
        self._deadline = deadline
        self._source = _chunks(deadline, data, chunk_size)
        self._ahead: bytes | None = None
        self._done = False

    def __iter__(self) -> DeadlineStream:
        return self

    def __next__(self) -> bytes:
        deadline = self._deadline
        if self._done:
            raise StopIteration
        deadline.check()
        chunk = self._ahead if self._ahead is not None else next(self._source, None)
        if chunk is None:
            self._done = True
            deadline.commit()
            raise StopIteration
        self._ahead = next(self._source, None)
        deadline.check()
        if self._ahead is None:
            # The last chunk: once the service has it, it may commit at any moment.
            deadline.commit()
            self._done = True
        return chunk


def _chunks(deadline: Deadline, data: WriteData, chunk_size: int) -> Iterator[bytes]:
    op, path = deadline.op, deadline.path
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data).cast("B")
        for start in range(0, view.nbytes, chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    for chunk in iter_chunks(op, "timeout", path, data, chunk_size=chunk_size):
        yield bytes(chunk)


def check_settings(seconds: float, per_op: Mapping[str, float | None] | None, grace: float) -> None:
    """Refuse a Timeout's (sync or async) deadlines that are not positive, or a bad grace.

    Raises:
        InvalidArgumentError: Naming ``new`` and what was wrong.
    """
    for value in [seconds, *(per_op or {}).values()]:
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise InvalidArgumentError("new", "timeout", "", "deadlines must be positive")
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace < math.inf:
        raise InvalidArgumentError(
            "new", "timeout", "", f"grace must be a finite number >= 0, not {grace!r}"
        )


def deadline_stream(deadline: Deadline, data: WriteData) -> WriteData:
    """Return ``data`` as the service is to read it: through ``deadline``'s stream."""
    return DeadlineStream(deadline, data)


class Jobs:
    """Where the sync Timeout runs its calls while the caller waits: a bounded thread pool.

    A call that never got a thread can be dropped; one that started cannot be stopped
    (Python cannot stop a thread), so giving up on it leaves it running.
    """

    #: What becomes of a change the caller stopped waiting for.
    ABANDONED = "it may have taken effect, or may yet"

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storager-timeout")

    def start(self, fn: Callable[..., T], *args: Any) -> Job[T]:
        """Start ``fn(*args)`` on a pool thread, in the caller's context."""
        return Job(self._pool.submit(in_context(fn), *args))

    def shutdown(self) -> None:
        """Take no more calls; queued ones still run (their callers wait for them)."""
        self._pool.shutdown(wait=False)


class Job(Generic[T]):
    """One call started by :class:`Jobs`."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[T]) -> None:
        self._future = future

    def finished(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the call; return whether it has finished."""
        try:
            self._future.exception(timeout=seconds)  # waits; the call's error stays put
        except FutureTimeout:
            return False
        except CancelledError:
            pass
        return True

    def cancel(self) -> None:
        """Drop the call if it has not started; a started one goes on."""
        self._future.cancel()

    def succeeded(self) -> bool:
        """Whether the call finished without an error."""
        f = self._future
        return f.done() and not f.cancelled() and f.exception() is None

    def result(self) -> T:
        """The call's result, or its error raised (it has finished)."""
        return self._future.result()
