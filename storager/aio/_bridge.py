"""How the async view runs a sync store's calls without blocking the event loop.

Every call goes to a thread pool owned by the view and bounded by ``threads``: the
event loop only awaits the result. Nothing is bound to a loop: the pool is plain
threads, and each call looks up the running loop when it starts, so one view works
from several ``asyncio.run()`` calls and from several loops in turn. No event loop
runs in a hidden thread.

Under another async library than asyncio (trio), the same pool runs the calls and
anyio's primitives do the waiting (``storager.aio._anyio``: the ``trio`` extra).

Data given to a write as an async iterable (or an object with an async ``read``) is
pulled, one chunk at a time, from the caller's loop by the thread that writes, so
memory stays bounded. When the awaiting task is cancelled, the next pull raises
instead, and the write is abandoned (an atomic store leaves nothing).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar, cast

from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import InvalidArgumentError, StorageError
from storager._protocols import Storager
from storager.aio import _anyio as _other_loop
from storager.aio._reader import ThreadedReader

__all__ = ["DEFAULT_THREADS", "LIST_BATCH", "ViewBase", "off_loop"]

T = TypeVar("T")

#: Threads per view unless told otherwise: the most calls of one store running at once.
DEFAULT_THREADS = 16
#: Listed objects fetched per trip to the pool, so a listing costs few thread hops.
LIST_BATCH = 256
#: Bytes asked of an async ``read`` per chunk.
_CHUNK = 1 << 20


class _Abandoned(StorageError):
    """The awaiting task was cancelled; the write stops pulling data."""

    default_reason = "cancelled by the caller"


class ViewBase:
    """The state and helpers the generated operations of the async view call."""

    _sync: Storager

    def __init__(
        self, store: Storager, *, threads: int = DEFAULT_THREADS, inline: bool = False
    ) -> None:
        if not isinstance(store, Storager):
            raise InvalidArgumentError(
                "new", "aio", "", f"store must be a Storager, not {type(store).__name__}"
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidArgumentError(
                "new", "aio", "", f"threads must be an int >= 1, not {threads!r}"
            )
        self._sync = store
        self._threads = threads
        self._inline = inline
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is not None:
            return pool
        with self._pool_lock:
            if self._closed:
                raise InvalidArgumentError(
                    "call", "aio", "", "this async view is closed (its store was closed)"
                )
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="storager-aio")
            return self._pool

    def _shutdown_pool(self) -> ThreadPoolExecutor | None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        return pool

    async def _run(self, fn: Callable[..., T], *args: Any, **pairs: Any) -> T:
        """Run ``fn(*args, **pairs)`` on the pool, in the caller's context; await it.

        An inline view (a store whose calls cannot block) calls ``fn`` directly.
        """
        if self._inline:
            return fn(*args, **pairs)
        return await self._threaded(fn, *args, **pairs)

    async def _threaded(self, fn: Callable[..., T], *args: Any, **pairs: Any) -> T:
        """Run ``fn(*args, **pairs)`` on the pool even in an inline view."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **pairs)
        loop = _asyncio_loop()
        if loop is None:
            return await _other_loop.wait_on(self._executor(), call)
        return await loop.run_in_executor(self._executor(), call)

    async def _run_writing(
        self, fn: Callable[..., T], data: AsyncWriteData, *lead: Any, **pairs: Any
    ) -> T:
        """Run a call whose last argument is data, bridging async data to the thread.

        An inline view writes bytes inline and gathers async data first (its store keeps
        objects in memory anyway); a sync file or iterable may block, so it goes to the pool.
        """
        if self._inline and isinstance(data, bytes | bytearray | memoryview):
            return fn(*lead, data, **pairs)
        if self._inline and _is_async_source(data):
            gathered = [chunk async for chunk in _async_chunks(data)]
            return fn(*lead, gathered, **pairs)
        if not _is_async_source(data):
            return await self._threaded(fn, *lead, data, **pairs)
        loop = _asyncio_loop()
        source = _PulledSource(data, _pull_on(loop) if loop else _other_loop.puller())
        try:
            return await self._threaded(fn, *lead, source.chunks(), **pairs)
        except BaseException:  # cancelled (asyncio's or another library's): pull no more
            source.abandon()
            raise

    async def _open_reader(
        self, fn: Callable[..., BinaryIO], *args: Any, **pairs: Any
    ) -> AsyncReader:
        reader = await self._run(fn, *args, **pairs)
        return ThreadedReader(reader, self._run)

    async def _iterate(
        self, fn: Callable[..., Iterator[T]], *args: Any, **pairs: Any
    ) -> AsyncIterator[T]:
        """Yield what ``fn(...)`` yields, fetching batches of items on the pool."""
        iterator = await self._run(lambda: iter(fn(*args, **pairs)))
        try:
            while True:
                batch, done = await self._run(_take, iterator, LIST_BATCH)
                for item in batch:
                    yield item
                if done:
                    return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


async def _async_chunks(data: AsyncWriteData) -> AsyncIterator[bytes]:
    pull = (
        _iterable_pull(cast(AsyncIterable[bytes], data))
        if hasattr(data, "__aiter__")
        else _reader_pull(data)
    )
    while (chunk := await pull()) is not None:
        yield chunk


def _take(iterator: Iterator[T], count: int) -> tuple[list[T], bool]:
    batch: list[T] = []
    for item in iterator:
        batch.append(item)
        if len(batch) >= count:
            return batch, False
    return batch, True


def _is_async_source(data: object) -> bool:
    if hasattr(data, "__aiter__"):
        return True
    return inspect.iscoroutinefunction(getattr(data, "read", None))


class _PulledSource:
    """Hand an async source's chunks to a thread, one at a time, from the caller's loop."""

    def __init__(self, data: AsyncWriteData, pull: Callable[[Callable[[], Any]], Any]) -> None:
        self._pull = pull
        self._abandoned = False
        if hasattr(data, "__aiter__"):
            self._next = _iterable_pull(cast(AsyncIterable[bytes], data))
        else:
            self._next = _reader_pull(data)

    def abandon(self) -> None:
        self._abandoned = True

    def chunks(self) -> Iterator[bytes]:
        while True:
            if self._abandoned:
                raise _Abandoned("write", "aio", "")
            chunk = self._pull(self._next)
            if self._abandoned:
                raise _Abandoned("write", "aio", "")
            if chunk is None:
                return
            yield chunk


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under another async library (trio...)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _pull_on(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], Any]], Any]:
    """From a worker thread: run a coroutine function on ``loop`` and wait for it."""

    def pull(coroutine_function: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine_function(), loop).result()

    return pull


async def off_loop(fn: Callable[[], T]) -> T:
    """Run blocking ``fn`` on a thread outside any view's pool, under asyncio or trio."""
    loop = _asyncio_loop()
    if loop is None:
        return await _other_loop.to_thread(fn)
    return await loop.run_in_executor(None, fn)


def _iterable_pull(data: AsyncIterable[bytes]) -> Callable[[], Any]:
    iterator = aiter(data)

    async def pull() -> bytes | None:
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None

    return pull


def _reader_pull(data: Any) -> Callable[[], Any]:
    async def pull() -> bytes | None:
        chunk = await data.read(_CHUNK)
        return bytes(chunk) if chunk else None

    return pull
