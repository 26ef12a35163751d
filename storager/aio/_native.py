"""The seam through which a service gives its own async implementation.

A service whose backend is async (an aiohttp SDK, an asyncio client) defines
``_native_async(self)`` returning a :class:`NativeAsync` over itself (or ``None`` to
keep the thread bridge, say for credentials only a sync chain gives).
:func:`storager.aio.async_view` — so ``store.aio`` and ``storager.open_async`` too —
returns it instead of the threaded view. The contract is written down in docs/async.md
("Native async services").

:class:`NativeAsync` gives the public verbs; the service writes one coroutine per
operation with the signature of its sync ``_op`` method (store-absolute paths, pairs
already validated and defaulted), on a client it takes from a
:class:`~storager.aio.LoopLocal`, so nothing is bound to one event loop.

Pairs are validated by the service's generated sync methods themselves, so the two
sides cannot accept different pairs: :func:`planner_for` makes a twin of the store
whose ``_op`` methods return the validated call (:class:`Planned`) instead of running
it. (The generator could emit this preparation step directly; see
/work/notes/async-needs-codegen.md.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

from storager._async_protocols import (
    AsyncAppender,
    AsyncCopier,
    AsyncDirer,
    AsyncMover,
    AsyncStorager,
)
from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import InvalidArgumentError, StorageError
from storager._names import NAME_CLAIMS
from storager._object import Object, StorageMeta
from storager._protocols import IoCallback, WriteData
from storager._service import Service
from storager._streams import CHUNK_SIZE, iter_chunks, mark_source_error

__all__ = [
    "NativeAppender",
    "NativeAsync",
    "NativeCopier",
    "NativeDirer",
    "NativeMover",
    "Planned",
    "async_chunks",
    "planner_for",
]

T = TypeVar("T")
S = TypeVar("S", bound=Service)

Chunk = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Planned:
    """A validated call: the ``_op`` method's arguments, as the generated code made them."""

    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def error_path(self) -> str:
        """The store-absolute path errors name (the first path argument)."""
        first = self.args[0] if self.args else ""
        return first if isinstance(first, str) else str(getattr(first, "path", ""))


_planner_classes: dict[type, type] = {}
_planner_lock = threading.Lock()


def planner_for(store: S) -> S:
    """Return a twin of ``store`` whose public methods validate and return a Planned.

    The twin shares the store's state (its ``__dict__``), so default pairs and the
    work_dir are the store's own; its ``_op`` methods record their arguments instead
    of doing I/O. Calling ``planner.read("a", size=2)`` thus runs exactly the checks of
    ``store.read`` and returns ``Planned("read", ("/a",), {"size": 2, ...})``.
    """
    cls = _planner_class(type(store))
    planner: object = object.__new__(cls)
    object.__setattr__(planner, "__dict__", store.__dict__)
    return cast(S, planner)


def _planner_class(cls: type[Service]) -> type:
    planner: type | None = _planner_classes.get(cls)
    if planner is not None:
        return planner
    with _planner_lock:
        planner = _planner_classes.get(cls)
        if planner is None:
            namespace: dict[str, Any] = {
                "_map_iter": lambda self, iterator, op, path: iterator,
                "__module__": __name__,
            }
            for op in cls.capability.operations:
                namespace["_" + op] = _recorder(op)
            planner = type(f"{cls.__name__}Planner", (cls,), namespace)
            _planner_classes[cls] = planner
    return planner


def _recorder(op: str) -> Callable[..., Planned]:
    def record(self: object, *args: Any, **kwargs: Any) -> Planned:
        return Planned(op, args, kwargs)

    return record


class NativeAsync(AsyncStorager):
    """Base of a service's native async store; see the module docstring.

    Subclasses implement ``_list`` (an async iterator), ``_read``, ``_open_reader``,
    ``_write``, ``_stat``, ``_delete`` and each capability's ``_op`` as coroutines
    with the sync ``_op`` signatures, inherit the ``Native*`` mixin of each capability
    the sync store has, and release their clients in ``_aclose``.
    """

    def __init__(self, store: Service) -> None:
        self._sync = store
        self._plan = planner_for(store)
        self._closed = False

    # -- what every native store shares -------------------------------------------------

    def metadata(self) -> StorageMeta:
        """Return the sync store's metadata (no I/O)."""
        return self._sync.metadata()

    @property
    def sync(self) -> Service:
        """The sync store this async store is the twin of."""
        return self._sync

    async def close(self) -> None:
        """Close the clients of every loop, then the sync store; closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._aclose()
        finally:
            # The sync store's close may block (its own loop thread, sockets).
            await asyncio.to_thread(self._sync.close)

    async def _aclose(self) -> None:
        """Release the async clients (override)."""

    async def __aenter__(self) -> NativeAsync:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._sync!r}>"

    # -- running an operation -----------------------------------------------------------

    def _prepare(self, op: str, *args: Any, **pairs: Any) -> Planned:
        planned: Planned = getattr(self._plan, op)(*args, **pairs)
        return planned

    async def _call(self, op: str, *args: Any, **pairs: Any) -> Any:
        """Validate as the sync method does, run the ``_op`` coroutine, map its errors."""
        if self._sync._exclusive_names and op in NAME_CLAIMS:
            # The generated code then checks the name with the sync store's requests
            # (storager._names): they block, so the preparation runs off the loop.
            planned = await asyncio.to_thread(self._prepare, op, *args, **pairs)
        else:
            planned = self._prepare(op, *args, **pairs)
        method: Callable[..., Awaitable[Any]] = getattr(self, "_" + op)
        try:
            return await method(*planned.args, **planned.kwargs)
        except StorageError:
            raise
        except Exception as exc:
            raise self._sync._translate(exc, op, planned.error_path)  # noqa: B904

    async def _iterate(self, op: str, *args: Any, **pairs: Any) -> AsyncIterator[Any]:
        planned = self._prepare(op, *args, **pairs)
        method: Callable[..., AsyncIterator[Any]] = getattr(self, "_" + op)
        try:
            async for item in method(*planned.args, **planned.kwargs):
                yield item
        except StorageError:
            raise
        except Exception as exc:
            raise self._sync._translate(exc, op, planned.error_path)  # noqa: B904

    # -- the core verbs -----------------------------------------------------------------

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        """List objects under ``path``; see :class:`AsyncStorager`."""
        return self._iterate("list", path, **pairs)

    async def read(self, path: str, **pairs: Any) -> bytes:
        """Read an object or a range of it; see :class:`AsyncStorager`."""
        data: bytes = await self._call("read", path, **pairs)
        return data

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        """Open an object for streaming; see :class:`AsyncStorager`."""
        reader: AsyncReader = await self._call("open_reader", path, **pairs)
        return reader

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        """Write an object whole; see :class:`AsyncStorager`."""
        obj: Object = await self._call("write", path, data, **pairs)
        return obj

    async def stat(self, path: str, **pairs: Any) -> Object:
        """Return an object's metadata; see :class:`AsyncStorager`."""
        obj: Object = await self._call("stat", path, **pairs)
        return obj

    async def delete(self, path: str, **pairs: Any) -> None:
        """Delete an object (idempotent); see :class:`AsyncStorager`."""
        await self._call("delete", path, **pairs)


class NativeCopier(NativeAsync, AsyncCopier):
    """A native async store whose sync store is a Copier: implement ``_copy``."""

    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        """Copy an object; see :class:`AsyncCopier`."""
        await self._call("copy", src, dst, **pairs)


class NativeMover(NativeAsync, AsyncMover):
    """A native async store whose sync store is a Mover: implement ``_move``."""

    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        """Move an object; see :class:`AsyncMover`."""
        await self._call("move", src, dst, **pairs)


class NativeAppender(NativeAsync, AsyncAppender):
    """A native async store whose sync store is an Appender: implement ``_append``."""

    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        """Append to an object; see :class:`AsyncAppender`."""
        obj: Object = await self._call("append", path, data, **pairs)
        return obj


class NativeDirer(NativeAsync, AsyncDirer):
    """A native async store whose sync store is a Direr: implement ``_create_dir``."""

    async def create_dir(self, path: str, **pairs: Any) -> Object:
        """Create a directory; see :class:`AsyncDirer`."""
        obj: Object = await self._call("create_dir", path, **pairs)
        return obj


# -- data ---------------------------------------------------------------------------------


async def async_chunks(
    op: str,
    service: str,
    path: str,
    data: AsyncWriteData,
    *,
    size: int | None = None,
    io_callback: IoCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> AsyncIterator[Chunk]:
    """Yield ``data``'s chunks on the event loop, checked as ``iter_chunks`` checks them.

    Bytes are yielded whole; a sync file or iterable is pulled a chunk at a time on a
    worker thread (it may block); an async iterable or async file is awaited. With
    ``size``, a longer or shorter source raises InvalidArgumentError before the end,
    so the caller can drop what it staged.
    """
    if isinstance(data, bytes | bytearray | memoryview) or not _is_async(data):
        sync = iter_chunks(
            op,
            service,
            path,
            cast(WriteData, data),
            size=size,
            io_callback=io_callback,
            chunk_size=chunk_size,
        )
        if isinstance(data, bytes | bytearray | memoryview):
            for chunk in sync:
                yield chunk
            return
        while True:
            pulled: Chunk | None = await asyncio.to_thread(_next_or_none, sync)
            if pulled is None:
                return
            yield pulled
        return
    total = 0
    async for chunk in _async_raw(data, chunk_size):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidArgumentError(
                op, service, path, f"data yielded {type(chunk).__name__}, expected bytes"
            )
        n = memoryview(chunk).nbytes
        if not n:
            continue
        total += n
        if size is not None and total > size:
            raise InvalidArgumentError(
                op, service, path, f"data is longer than size={size}; nothing was written"
            )
        if io_callback is not None:
            io_callback(n)
        yield chunk
    if size is not None and total != size:
        raise InvalidArgumentError(
            op, service, path, f"data has {total} bytes, not size={size}; nothing was written"
        )


def _next_or_none(iterator: Iterator[Chunk]) -> Chunk | None:
    return next(iterator, None)


def _is_async(data: object) -> bool:
    return hasattr(data, "__aiter__") or asyncio.iscoroutinefunction(getattr(data, "read", None))


async def _async_raw(data: Any, chunk_size: int) -> AsyncIterator[Any]:
    """Yield what an async source gives, marking its own errors as the caller's."""
    if hasattr(data, "__aiter__"):
        iterator = aiter(data)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except Exception as exc:
                mark_source_error(exc)
                raise
            yield chunk
    while True:
        try:
            chunk = await data.read(chunk_size)
        except Exception as exc:
            mark_source_error(exc)
            raise
        if not chunk:
            return
        yield chunk
