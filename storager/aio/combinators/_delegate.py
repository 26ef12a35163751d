"""Delegate: a combinator over one child that every call passes through, and its mixins.

Written once: ``storager/aio/combinators/_delegate.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_delegate.py`` from it. Retry,
Timeout, Failover, Prefixed, ReadOnly, Logged and Audited are Delegates: each overrides
``_around`` (and Prefixed ``_path``/``_out``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, cast

from storager._async_protocols import (
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
from storager._object import Multipart, Object, Part
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
)
from storager.aio.combinators._base import (
    AsyncWrapper,
    Call,
    async_capabilities_of,
    async_listing_through,
    call_child,
)
from storager.combinators._trace import span, tracing

__all__ = [
    "ASYNC_DELEGATE_MIXINS",
    "AsyncDelegate",
    "AsyncDelegateAppender",
    "AsyncDelegateCopier",
    "AsyncDelegateDirer",
    "AsyncDelegateLinker",
    "AsyncDelegateMover",
    "AsyncDelegatePresigner",
    "AsyncDelegateSegmenter",
]

T = TypeVar("T")


class AsyncDelegate(AsyncWrapper):
    """A combinator over one child that every call passes through.

    Every operation goes through ``_call(op, path, fn)``, where ``fn`` runs the
    operation on a child store; subclasses override ``_around`` to add their
    behaviour (retry, timeout, logging, faults) in one place.
    """

    def __init__(self, inner: AsyncStorager) -> None:
        if not isinstance(inner, AsyncStorager):
            raise InvalidArgumentError(
                "new",
                self.combinator,
                "",
                f"inner must be a store (AsyncStorager), not {type(inner).__name__}",
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
        if not tracing():
            return await self._around(op, path, fn)
        with span(self.describe_label(), op, path):
            return await self._around(op, path, fn)

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        """Run ``fn`` on the child: the one place subclasses add behaviour."""
        return await call_child(self._inner, op, path, fn)

    def _path(self, op: str, path: str) -> str:
        """Map a caller's path to the child's (Prefixed overrides)."""
        return path

    def _out(self, obj: Object) -> Object:
        """Map a child's object back to the caller's view (Prefixed overrides)."""
        return obj

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        # A non-str path goes to the child as it is, to be refused there.
        p = self._path("list", path) if isinstance(path, str) else path
        out = None if type(self)._out is AsyncDelegate._out else self._out
        return async_listing_through(self._call, "list", path, lambda s: s.list(p, **pairs), out)

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


# -- the capability mixins every Delegate shares ------------------------------------------


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
        return async_listing_through(
            self._call,
            "list_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).list_multipart(multipart, **pairs),
        )


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
