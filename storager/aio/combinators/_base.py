"""The base of the async combinators, and how each gets exactly its children's capabilities.

The async twins reuse the sync machinery: the same capability classes
(``storager.combinators._base.capability_class``, keyed by the sync protocol whose
async twin a mixin implements), the same capability meet for ``metadata()``, and the
policy cores of each sync combinator (Retry's ``Attempts``, Prefixed's ``PrefixMap``,
Logged's ``Reporter``, Timeout's ``Deadline``). Only the awaiting differs.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, TypeVar, cast

from storager._async_protocols import (
    ASYNC_TWIN,
    AsyncAppender,
    AsyncCopier,
    AsyncDirer,
    AsyncLinker,
    AsyncMover,
    AsyncPresigner,
    AsyncSegmenter,
    AsyncStorager,
)
from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, Part, StorageMeta
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
)
from storager.combinators._base import capability_class, label, meet_capability, ops_of
from storager.combinators._trace import span, tracing

__all__ = [
    "AsyncDelegate",
    "AsyncOrderLock",
    "AsyncWrapper",
    "async_capabilities_of",
    "async_common_capabilities",
    "call_child",
    "call_listing",
]

T = TypeVar("T")
W = TypeVar("W", bound="AsyncWrapper")

#: What a delegate runs on its child: ``await fn(child)``.
Call = Callable[[AsyncStorager], Awaitable[T]]

_END = object()


def async_capabilities_of(store: object) -> frozenset[type]:
    """Return the sync capability protocols whose async twin ``store`` is an instance of."""
    return frozenset(
        sync
        for sync, twin in ASYNC_TWIN.items()
        if sync is not Storager and isinstance(store, twin)
    )


def async_common_capabilities(stores: Iterable[object]) -> frozenset[type]:
    """Return the capabilities every one of ``stores`` has (none for no stores)."""
    result: frozenset[type] | None = None
    for store in stores:
        caps = async_capabilities_of(store)
        result = caps if result is None else result & caps
    return result or frozenset()


def _common(stores: Sequence[object]) -> frozenset[type]:
    result = async_capabilities_of(stores[0]) if stores else frozenset()
    for store in stores[1:]:
        result &= async_capabilities_of(store)
    return result


class AsyncWrapper(AsyncStorager):
    """Base of every async combinator: an async store made of async child stores."""

    combinator: ClassVar[str] = "wrapper"
    _capability_mixins: ClassVar[Mapping[type, type]] = {}
    _capability_base: ClassVar[type | None] = None
    _closed: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        base = cast(type[AsyncWrapper], cls.__dict__.get("_capability_base") or cls)
        caps = base._allowed_capabilities(*args, **kwargs)
        return object.__new__(capability_class(cast(Any, base), caps))

    @classmethod
    def _allowed_capabilities(cls, *args: Any, **kwargs: Any) -> frozenset[type]:
        return frozenset()

    def children(self) -> Mapping[str, AsyncStorager]:
        """Return the child stores by name, in order."""
        raise NotImplementedError

    def describe_label(self) -> str:
        """Return how this node appears in descriptions."""
        return self.combinator

    def metadata(self) -> StorageMeta:
        """Return the combinator's name, its children's work_dir, and what it can do."""
        metas = [k.metadata() for k in self.children().values()]
        return StorageMeta(
            self.combinator,
            "",
            metas[0].work_dir if metas else "/",
            meet_capability([m.capability for m in metas], ops_of(async_capabilities_of(self))),
        )

    async def close(self) -> None:
        """Close the children (each once); closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        seen: set[int] = set()
        for child in self.children().values():
            if id(child) not in seen:
                seen.add(id(child))
                await child.close()

    async def __aenter__(self: W) -> W:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        kids = ", ".join(f"{k}={v!r}" for k, v in self.children().items())
        return f"<{type(self).__name__} {kids}>"


async def _prime(iterator: AsyncIterator[T]) -> tuple[object, AsyncIterator[T]]:
    """Fetch the first item now, so a listing's errors surface inside the call."""
    try:
        first: object = await anext(iterator)
    except StopAsyncIteration:
        first = _END
    return first, iterator


async def call_child(child: AsyncStorager, op: str, path: str, fn: Call[T]) -> T:
    """Await ``fn(child)``, recording a span for leaf stores when a trace is active."""
    if not tracing() or isinstance(child, AsyncWrapper):
        return await fn(child)
    with span(label(child), op, path):
        return await fn(child)


def call_listing(
    child: AsyncStorager, op: str, path: str, fn: Callable[[AsyncStorager], AsyncIterator[T]]
) -> AsyncIterator[T]:
    """Return ``fn(child)``'s listing: in async code it starts on the first ``anext``."""
    return fn(child)


class AsyncOrderLock:
    """Calls on one event loop take it in turn (an asyncio lock per loop: one belongs to a loop).

    The twin of a thread lock where a combinator keeps things in order (Audited's
    records); it never blocks the loop.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def __aenter__(self) -> None:
        await self._lock().acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock().release()


class AsyncDelegate(AsyncWrapper):
    """An async combinator over one child that every call passes through ``_around``."""

    def __init__(self, inner: AsyncStorager) -> None:
        if not isinstance(inner, AsyncStorager):
            raise InvalidArgumentError(
                "new",
                self.combinator,
                "",
                f"inner must be an AsyncStorager, not {type(inner).__name__}",
            )
        self._inner = inner

    @classmethod
    def _allowed_capabilities(
        cls, inner: object = None, *args: Any, **kwargs: Any
    ) -> frozenset[type]:
        return async_capabilities_of(inner)

    @property
    def inner(self) -> AsyncStorager:
        """The wrapped store."""
        return self._inner

    def children(self) -> Mapping[str, AsyncStorager]:
        return {"inner": self._inner}

    async def _call(self, op: str, path: str, fn: Call[T]) -> T:
        return await self._around(op, path, fn)

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        """Run ``fn`` on the child: the one place subclasses add behaviour."""
        return await fn(self._inner)

    def _path(self, op: str, path: str) -> str:
        """Map a caller's path to the child's (Prefixed overrides)."""
        return path

    def _out(self, obj: Object) -> Object:
        """Map a child's object back to the caller's view (Prefixed overrides)."""
        return obj

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        return self._list(path, pairs)

    async def _list(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        p = self._path("list", path) if isinstance(path, str) else path
        first, rest = await self._call("list", path, lambda s: _prime(s.list(p, **pairs)))
        if first is _END:
            return
        yield self._out(cast(Object, first))
        async for obj in rest:
            yield self._out(obj)

    async def read(self, path: str, **pairs: Any) -> bytes:
        p = self._path("read", path)
        return await self._call("read", path, lambda s: s.read(p, **pairs))

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        p = self._path("open_reader", path)
        return await self._call("open_reader", path, lambda s: s.open_reader(p, **pairs))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        p = self._path("write", path)
        return self._out(await self._call("write", path, lambda s: s.write(p, data, **pairs)))

    async def stat(self, path: str, **pairs: Any) -> Object:
        p = self._path("stat", path)
        return self._out(await self._call("stat", path, lambda s: s.stat(p, **pairs)))

    async def delete(self, path: str, **pairs: Any) -> None:
        p = self._path("delete", path)
        await self._call("delete", path, lambda s: s.delete(p, **pairs))


# -- the capability mixins every AsyncDelegate shares ----------------------------------------


class AsyncDelegateCopier(AsyncDelegate, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        s, d = self._path("copy", src), self._path("copy", dst)
        await self._call("copy", src, lambda c: cast(AsyncCopier, c).copy(s, d, **pairs))


class AsyncDelegateMover(AsyncDelegate, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        s, d = self._path("move", src), self._path("move", dst)
        await self._call("move", src, lambda c: cast(AsyncMover, c).move(s, d, **pairs))


class AsyncDelegateSegmenter(AsyncDelegate, AsyncSegmenter):
    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        p = self._path("create_multipart", path)
        return await self._call(
            "create_multipart",
            path,
            lambda c: cast(AsyncSegmenter, c).create_multipart(p, **pairs),
        )

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        return await self._call(
            "write_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).write_multipart(multipart, number, data, **pairs),
        )

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        return self._out(
            await self._call(
                "complete_multipart",
                multipart.path,
                lambda c: cast(AsyncSegmenter, c).complete_multipart(multipart, parts, **pairs),
            )
        )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        await self._call(
            "abort_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).abort_multipart(multipart, **pairs),
        )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        return self._list_multipart(multipart, pairs)

    async def _list_multipart(
        self, multipart: Multipart, pairs: dict[str, Any]
    ) -> AsyncIterator[Part]:
        first, rest = await self._call(
            "list_multipart",
            multipart.path,
            lambda c: _prime(cast(AsyncSegmenter, c).list_multipart(multipart, **pairs)),
        )
        if first is _END:
            return
        yield cast(Part, first)
        async for part in rest:
            yield part


class AsyncDelegateAppender(AsyncDelegate, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        p = self._path("append", path)
        return self._out(
            await self._call(
                "append", path, lambda c: cast(AsyncAppender, c).append(p, data, **pairs)
            )
        )


class AsyncDelegateDirer(AsyncDelegate, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        p = self._path("create_dir", path)
        return self._out(
            await self._call(
                "create_dir", path, lambda c: cast(AsyncDirer, c).create_dir(p, **pairs)
            )
        )


class AsyncDelegateLinker(AsyncDelegate, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        p, t = self._path("create_link", path), self._path("create_link", target)
        return self._out(
            await self._call(
                "create_link", path, lambda c: cast(AsyncLinker, c).create_link(p, t, **pairs)
            )
        )


class AsyncDelegatePresigner(AsyncDelegate, AsyncPresigner):
    async def presign_read(self, path: str, **pairs: Any) -> str:
        p = self._path("presign_read", path)
        return await self._call(
            "presign_read", path, lambda c: cast(AsyncPresigner, c).presign_read(p, **pairs)
        )

    async def presign_write(self, path: str, **pairs: Any) -> str:
        p = self._path("presign_write", path)
        return await self._call(
            "presign_write", path, lambda c: cast(AsyncPresigner, c).presign_write(p, **pairs)
        )


#: The mixin of each capability, keyed by the sync protocol (as ``capability_class`` wants).
ASYNC_DELEGATE_MIXINS: Mapping[type, type] = MappingProxyType(
    {
        Copier: AsyncDelegateCopier,
        Mover: AsyncDelegateMover,
        Segmenter: AsyncDelegateSegmenter,
        Appender: AsyncDelegateAppender,
        Direr: AsyncDelegateDirer,
        Linker: AsyncDelegateLinker,
        Presigner: AsyncDelegatePresigner,
    }
)
AsyncDelegate._capability_mixins = ASYNC_DELEGATE_MIXINS
