"""AsyncTimeout: a deadline on every operation, and a change that timed out never lands.

The twin of :class:`~storager.combinators.Timeout`, with the same states and the same
``Deadline`` (``storager.combinators._deadline``) deciding between them. The difference
is what stopping means: the operation runs as a task, and at the deadline the task is
*cancelled*. A native async store stops at its next await (an azblob write cancels its
staged blocks and never commits); a threaded view stops waiting while its thread reads
the data through the deadline stream, which refuses the next chunk. Either way:

- a read raises :class:`~storager.OperationTimeoutError`;
- a write still reading its data raises OperationTimeoutError, and nothing is, or will
  be, written;
- a write whose data the store had in full (it may be committing), and any other change
  that started, gets ``grace`` seconds more, then is cancelled and raises
  :class:`~storager.OutcomeUnknownError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import OutcomeUnknownError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, WriteData
from storager._streams import CHUNK_SIZE
from storager.aio._native import _is_async, async_chunks
from storager.aio.combinators._base import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
    Call,
)
from storager.combinators._base import MUTATING
from storager.combinators._deadline import Deadline, DeadlineStream, check_settings

__all__ = ["AsyncTimeout"]

T = TypeVar("T")

#: Changes to the store; signing a URL changes nothing.
_CHANGES = MUTATING - {"presign_write"}


class _Guarded:
    """A call whose data reaches the store through ``deadline``'s stream."""

    __slots__ = ("deadline", "run")

    def __init__(self, deadline: Deadline, run: Call[Any]) -> None:
        self.deadline = deadline
        self.run = run

    def __call__(self, store: AsyncStorager) -> Any:
        return self.run(store)


class AsyncTimeout(AsyncDelegate):
    """Give each operation of an async store a deadline; see the module docstring.

    Args:
        inner: The async store to wrap; its capabilities are kept.
        seconds: The deadline of every operation.
        per_op: Deadlines for particular operations; ``None`` means no deadline.
        grace: Seconds a change that can no longer be stopped may take past its
            deadline before it is cancelled and reported as OutcomeUnknownError.

    A deadline covers the call: for ``open_reader``, opening; for ``list``, the first
    item. Put it beneath AsyncRetry, as with the sync Timeout.
    """

    combinator = "timeout"

    def __init__(
        self,
        inner: AsyncStorager,
        seconds: float,
        *,
        per_op: Mapping[str, float | None] | None = None,
        grace: float = 0.0,
    ) -> None:
        super().__init__(inner)
        check_settings(seconds, per_op, grace)
        self.seconds = seconds
        self.per_op = dict(per_op or {})
        self.grace = float(grace)

    def describe_label(self) -> str:
        return f"timeout {self.seconds:g}s"

    def _seconds(self, op: str) -> float | None:
        return self.per_op.get(op, self.seconds)

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        seconds = self._seconds(op)
        if seconds is None:
            return await fn(self._inner)
        if isinstance(fn, _Guarded):
            deadline: Deadline | None = fn.deadline
        elif op in _CHANGES:
            deadline = Deadline(op, path, seconds, stoppable=False)
        else:
            deadline = None
        task = asyncio.ensure_future(self._started(deadline, fn))
        if await _finished(task, seconds):
            return task.result()
        if deadline is None:
            await _cancel(task)
            raise Deadline(op, path, seconds, stoppable=True).timeout_error()
        if deadline.expire():
            await _cancel(task)
            if not task.cancelled() and task.exception() is None:
                return task.result()  # it finished as the deadline passed
            raise deadline.timeout_error("nothing was changed")
        if await _finished(task, self.grace):
            return task.result()
        await _cancel(task)
        raise OutcomeUnknownError(
            op,
            "timeout",
            path,
            f"no answer within {seconds:g} s (+{self.grace:g} s grace) after the change "
            "could no longer be stopped; it was cancelled, but may have taken effect: "
            "check before acting on it",
        )

    async def _started(self, deadline: Deadline | None, fn: Call[T]) -> T:
        if deadline is not None:
            deadline.start()
        return await fn(self._inner)

    async def _guarded(
        self,
        op: str,
        path: str,
        data: AsyncWriteData,
        pairs: dict[str, Any],
        run: Callable[[AsyncStorager, AsyncWriteData], Awaitable[T]],
    ) -> T:
        """Run a change whose data reaches the store through a deadline stream."""
        seconds = self._seconds(op)
        if seconds is None:
            return await self._call(op, path, lambda s: run(s, data))
        deadline = Deadline(op, path, seconds, stoppable=True)
        if isinstance(data, bytes | bytearray | memoryview) and pairs.get("size") is None:
            pairs["size"] = memoryview(data).nbytes  # the length the store would have seen
        stream: AsyncWriteData
        if _is_async(data):
            stream = _async_deadline_stream(deadline, data)
        else:
            stream = DeadlineStream(deadline, cast(WriteData, data))
        return cast(T, await self._call(op, path, _Guarded(deadline, lambda s: run(s, stream))))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        p = self._path("write", path)
        obj = await self._guarded("write", path, data, pairs, lambda s, d: s.write(p, d, **pairs))
        return self._out(obj)


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


async def _async_deadline_stream(deadline: Deadline, data: AsyncWriteData) -> AsyncIterator[bytes]:
    """An async source's chunks, refused once ``deadline`` expired (as DeadlineStream).

    Reads one chunk ahead, so that handing over the last chunk moves the deadline to
    ``committing`` first.
    """
    source = async_chunks(deadline.op, "timeout", deadline.path, data, chunk_size=CHUNK_SIZE)
    deadline.check()
    ahead = await anext(source, None)
    while True:
        deadline.check()
        if ahead is None:
            deadline.commit()
            return
        chunk = bytes(ahead)
        ahead = await anext(source, None)
        deadline.check()
        if ahead is None:
            deadline.commit()  # the last chunk: the store may commit once it has it
        yield chunk
        if ahead is None:
            return


async def _finished(task: asyncio.Future[Any], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``task``; a cancelled caller cancels the task too."""
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        await _cancel(task)
        raise
    return bool(done)


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has stopped (its cleanup has run)."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: the timeout error is what the caller gets
