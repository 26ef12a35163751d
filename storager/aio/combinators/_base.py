"""The base of the async combinators, and how each gets exactly its children's capabilities.

The async side reuses the sync machinery: the same capability classes
(``storager.combinators._base.capability_class``, keyed by the sync protocol whose
async twin a mixin implements) and the same capability meet for ``metadata()``. Beside
``AsyncWrapper`` are the async forms of the seams the derived combinators call
(``call_child``, ``call_listing``, ``async_listing_through``, ``AsyncOrderLock``);
the sync forms, of the same names without ``async``, are in
``storager/combinators/_base.py``.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, TypeVar, cast

from storager._async_protocols import (
    ASYNC_TWIN,
    AsyncStorager,
)
from storager._object import StorageMeta
from storager._protocols import (
    Storager,
)
from storager.combinators._base import capability_class, label, meet_capability, ops_of
from storager.combinators._trace import span, tracing

__all__ = [
    "AsyncOrderLock",
    "AsyncWrapper",
    "async_capabilities_of",
    "async_common_capabilities",
    "async_listing_through",
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
        self._close()
        seen: set[int] = set()
        for child in self.children().values():
            if id(child) not in seen:
                seen.add(id(child))
                await child.close()

    def _close(self) -> None:
        """Release the combinator's own resources (as the sync Wrapper's ``_close``)."""

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


def call_child(child: AsyncStorager, op: str, path: str, fn: Call[T]) -> Awaitable[T]:
    """``fn(child)`` to await, recording a span for leaf stores when a trace is active.

    Untraced, it is ``fn(child)`` itself: no coroutine of its own on every call.
    """
    if not tracing() or isinstance(child, AsyncWrapper):
        return fn(child)
    return _traced_call(child, op, path, fn)


async def _traced_call(child: AsyncStorager, op: str, path: str, fn: Call[T]) -> T:
    with span(label(child), op, path):
        return await fn(child)


def async_listing_through(
    call: Callable[..., Any],
    op: str,
    path: str,
    fn: Callable[[AsyncStorager], AsyncIterator[T]],
    out: Callable[[T], T] | None = None,
) -> AsyncIterator[T]:
    """A listing a Delegate starts through its ``_call`` (and its ``_around``).

    In async code it starts on the first ``anext``: the first item is fetched inside
    the call, so Retry, Timeout and the others cover it. ``out`` maps each item.
    """

    async def listing() -> AsyncIterator[T]:
        first, rest = await call(op, path, lambda s: _prime(fn(s)))
        if first is _END:
            return
        yield cast(T, first) if out is None else out(cast(T, first))
        async for item in rest:
            yield item if out is None else out(item)

    return listing()


def call_listing(
    child: AsyncStorager, op: str, path: str, fn: Callable[[AsyncStorager], AsyncIterator[T]]
) -> AsyncIterator[T]:
    """Return ``fn(child)``'s listing: in async code the child is asked on the first
    ``anext`` (a path the combinator itself refuses raises at the call, as in sync code)."""
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
