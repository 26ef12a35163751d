"""Prefixed: a store seen from a sub-path; ReadOnly: a store that refuses every change.

Written once: ``storager/aio/combinators/_prefixed.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_prefixed.py`` from it. The path
map both ways is ``PrefixMap`` and the refusal ``refuse_change``
(``storager/combinators/_prefix_map.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._object import Multipart, Object, Part, StorageMeta
from storager._protocols import Segmenter
from storager.aio.combinators._base import (
    Call,
    async_capabilities_of,
    async_listing_through,
    call_child,
)
from storager.aio.combinators._delegate import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
)
from storager.combinators._base import meet_capability, ops_of
from storager.combinators._prefix_map import PrefixMap, refuse_change

__all__ = ["AsyncPrefixed", "AsyncReadOnly"]

T = TypeVar("T")


class AsyncPrefixed(AsyncDelegate):
    """Show only what lies under ``prefix`` of another store, with no way out of it.

    The view is a store whose root is the prefix: paths are relative to its own
    ``work_dir`` or absolute from the prefix (``/a`` is ``<prefix>a``), and ``..``
    past the prefix raises PathInvalidError. Objects come back with paths as the
    view's caller sees them. The capabilities are the inner store's.

    Args:
        inner: The store to look into.
        prefix: A directory relative to the inner store's work_dir (or absolute in it).
        work_dir: The view's working directory, inside the prefix.
    """

    combinator = "prefixed"

    def __init__(self, inner: AsyncStorager, prefix: str, *, work_dir: str = "/") -> None:
        super().__init__(inner)
        self._map = PrefixMap(inner.metadata().work_dir, prefix, work_dir)

    @property
    def prefix(self) -> str:
        """The view's root, store-absolute in the inner store (ends with ``/``)."""
        return self._map.root

    def describe_label(self) -> str:
        return f"prefixed {self._map.root}"

    def metadata(self) -> StorageMeta:
        meta = self._inner.metadata()
        caps = meet_capability([meta.capability], ops_of(async_capabilities_of(self)))
        return StorageMeta("prefixed", meta.name, self._map.wd, caps)

    def _path(self, op: str, path: str) -> str:
        return self._map.inner_path(op, path)

    def _out(self, obj: Object) -> Object:
        return self._map.out(obj)


class _AsyncPrefixedSegmenter(AsyncDelegateSegmenter, AsyncPrefixed):
    """Uploads carry the view's store-absolute path; the inner path is derived again."""

    def _inner_upload(self, op: str, multipart: Multipart) -> Multipart:
        return Multipart(self._path(op, multipart.path), multipart.upload_id)

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        inner = await super().create_multipart(path, **pairs)
        m = self._map
        full = inner.path if inner.path.startswith("/") else m.inner_wd + inner.path
        return Multipart("/" + full[len(m.root) :], inner.upload_id)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        mp = self._inner_upload("write_multipart", multipart)
        return await self._call(  # the caller's path in spans and errors, not the inner one
            "write_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).write_multipart(mp, number, data, **pairs),
        )

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        mp = self._inner_upload("complete_multipart", multipart)
        return self._out(
            await self._call(
                "complete_multipart",
                multipart.path,
                lambda c: cast(AsyncSegmenter, c).complete_multipart(mp, parts, **pairs),
            )
        )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        mp = self._inner_upload("abort_multipart", multipart)
        await self._call(
            "abort_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).abort_multipart(mp, **pairs),
        )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        mp = self._inner_upload("list_multipart", multipart)
        return async_listing_through(
            self._call,
            "list_multipart",
            multipart.path,
            lambda c: cast(AsyncSegmenter, c).list_multipart(mp, **pairs),
        )


AsyncPrefixed._capability_mixins = {**ASYNC_DELEGATE_MIXINS, Segmenter: _AsyncPrefixedSegmenter}


class AsyncReadOnly(AsyncDelegate):
    """Serve reads from another store; every change raises PermissionDeniedError.

    It has none of the capability protocols: each changes the store, and a Presigner
    must also sign writes.
    """

    combinator = "readonly"

    @classmethod
    def _allowed_capabilities(cls, *args: Any, **kwargs: Any) -> frozenset[type]:
        return frozenset()

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        refuse_change(op, path)
        return await call_child(self._inner, op, path, fn)
