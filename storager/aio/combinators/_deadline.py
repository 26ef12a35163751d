"""Where the async Timeout runs its calls, and how an async source meets its deadline.

The async form's seams beside ``storager/combinators/_deadline.py`` (whose ``Deadline``
both forms share): a call runs as a task on the caller's loop, and at the deadline the
task is *cancelled*. A native async store stops at its next await (an azblob write
cancels its staged blocks and never commits); a threaded view stops waiting while its
thread reads the data through the deadline stream, which refuses the next chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

from storager._async_types import AsyncWriteData
from storager._protocols import WriteData
from storager._streams import CHUNK_SIZE
from storager.aio._native import _is_async, async_chunks
from storager.combinators._deadline import Deadline, DeadlineStream

__all__ = ["AsyncJob", "AsyncJobs", "async_deadline_stream"]

T = TypeVar("T")


def async_deadline_stream(deadline: Deadline, data: AsyncWriteData) -> AsyncWriteData:
    """Return ``data`` as the store is to read it: through ``deadline``'s stream."""
    if _is_async(data):
        return _async_deadline_stream(deadline, data)
    return DeadlineStream(deadline, cast(WriteData, data))


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


class AsyncJobs:
    """Where the async Timeout runs its calls: each a task on the caller's loop.

    ``workers`` is the sync form's pool size; a task needs no thread, so it is unused.
    """

    #: What becomes of a change the caller stopped waiting for.
    ABANDONED = "it was cancelled, but may have taken effect"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def start(self, fn: Callable[..., Awaitable[T]], *args: Any) -> AsyncJob[T]:
        """Start ``fn(*args)`` as a task."""
        return AsyncJob(asyncio.ensure_future(fn(*args)))

    def shutdown(self) -> None:
        """Nothing to release: tasks belong to their loops."""


class AsyncJob(Generic[T]):
    """One call started by :class:`AsyncJobs`."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Future[T]) -> None:
        self._task = task

    async def finished(self, seconds: float) -> bool:
        """Wait up to ``seconds``; a cancelled caller cancels the call too."""
        try:
            done, _ = await asyncio.wait({self._task}, timeout=seconds)
        except asyncio.CancelledError:
            await self.cancel()
            raise
        return bool(done)

    async def cancel(self) -> None:
        """Cancel the call and wait until it has stopped (its cleanup has run)."""
        task = self._task
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the timeout error is what the caller gets

    def succeeded(self) -> bool:
        """Whether the call finished without an error."""
        task = self._task
        return task.done() and not task.cancelled() and task.exception() is None

    def result(self) -> T:
        """The call's result, or its error raised (it has finished)."""
        return self._task.result()
