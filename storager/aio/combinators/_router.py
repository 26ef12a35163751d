"""Router: stores mounted under path prefixes; the longest matching prefix wins.

Written once: ``storager/aio/combinators/_router.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_router.py`` from it; the routing
itself is the ``MountTable`` (``storager/combinators/_mount_table.py``).

``Router({"logs/": fs_store, "": s3_store})`` sends ``logs/app.txt`` to ``fs_store``
as ``app.txt`` and everything else to ``s3_store``. Copy and move across mounts
stream through the client (``dst.write(p, src.open_reader(p))``, then a delete for
move); within a mount they use the store's own copy and move when it has them.
Listing a directory that holds mount points shows each mount as a directory.

Multipart uploads, links and presigned URLs stay inside one mount: the router is a
Segmenter, Linker or Presigner when every mount is. An upload's ``path`` is
router-absolute (``/logs/app.txt``), so later calls find the mount again; a link
whose target lies in another mount is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
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
from storager._object import Multipart, Object, ObjectMode, Part, StorageMeta
from storager._protocols import Appender, Copier, Direr, Linker, Mover, Presigner, Segmenter
from storager.aio.combinators._base import (
    AsyncWrapper,
    async_capabilities_of,
    async_common_capabilities,
    call_child,
    call_listing,
)
from storager.combinators._base import meet_capability, ops_of, served_by
from storager.combinators._mount_table import MountTable
from storager.combinators._trace import NO_SPAN, span, tracing

__all__ = ["AsyncRouter"]

T = TypeVar("T")

#: Capabilities the router has when every mount has them.
_ALL_MOUNTS = frozenset({Appender, Direr, Segmenter, Linker, Presigner})


class AsyncRouter(AsyncWrapper):
    """Mount stores under path prefixes.

    Args:
        mounts: Prefix (``"logs/"``; ``""`` for the root) to store. Paths inside a
            mount are relative to the mounted store's ``work_dir``.
        work_dir: The router's working directory: relative paths start there,
            absolute ones (``/logs/a``) from the router's root; ``..`` cannot leave it.

    A path no mount covers raises InvalidArgumentError. The router is a Copier and a
    Mover always (crossing mounts streams through the client, passing on the pairs
    the destination's ``write`` accepts), and an Appender, Direr, Segmenter, Linker
    or Presigner when every mount is (a presigned URL is the mount's own, for the
    path inside the mount).
    """

    combinator = "router"

    def __init__(self, mounts: Mapping[str, AsyncStorager], *, work_dir: str = "/") -> None:
        if not isinstance(mounts, Mapping) or not mounts:
            raise InvalidArgumentError("new", "router", "", "mounts must be a non-empty mapping")
        for prefix, store in mounts.items():
            if not isinstance(store, AsyncStorager):
                raise InvalidArgumentError(
                    "new", "router", "", f"mount {prefix!r} is no AsyncStorager"
                )
        self._table = MountTable(mounts, work_dir, lambda store: store.metadata().work_dir)

    @classmethod
    def _allowed_capabilities(cls, mounts: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(mounts, Mapping) or not mounts:
            return frozenset()
        common = async_common_capabilities(mounts.values())
        return frozenset({Copier, Mover}) | (common & _ALL_MOUNTS)

    def children(self) -> Mapping[str, AsyncStorager]:
        return self._table.children()

    def describe_label(self) -> str:
        return "router"

    def metadata(self) -> StorageMeta:
        metas = [store.metadata() for _, store in self._table.mounts]
        caps = meet_capability([m.capability for m in metas], ops_of(async_capabilities_of(self)))
        ops = dict(caps.operations)
        for op in ("copy", "move"):
            ops.setdefault(op, frozenset())
        fields = {f: getattr(caps, f) for f in caps.__slots__ if f != "operations"}
        fields["list_sorted"] = False
        fields["copy_server_side"] = False
        return StorageMeta("router", "", self._table.wd, type(caps)(operations=ops, **fields))

    # -- routing ------------------------------------------------------------------------

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span("router", op, path) if tracing() else NO_SPAN

    async def _on(
        self,
        op: str,
        path: str,
        fn: Callable[[AsyncStorager, str], Awaitable[T]],
        **kw: Any,
    ) -> tuple[str, T]:
        """Run ``fn(store, inner path)`` on the mount of ``path``; return its prefix too."""
        prefix, store, inner = self._table.route(op, path, **kw)
        served_by.set(prefix or "/")
        return prefix, await call_child(store, op, path, lambda s: fn(s, inner))

    # -- Storager -----------------------------------------------------------------------

    async def read(self, path: str, **pairs: Any) -> bytes:
        with self._traced("read", path):
            return (await self._on("read", path, lambda s, p: s.read(p, **pairs)))[1]

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        with self._traced("open_reader", path):
            return (await self._on("open_reader", path, lambda s, p: s.open_reader(p, **pairs)))[1]

    async def stat(self, path: str, **pairs: Any) -> Object:
        with self._traced("stat", path):
            mount = self._table.mount_point(path)
            if mount is not None:
                return mount
            prefix, obj = await self._on("stat", path, lambda s, p: s.stat(p, **pairs))
            return self._table.out(prefix, obj)

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        with self._traced("write", path):
            prefix, obj = await self._on("write", path, lambda s, p: s.write(p, data, **pairs))
            return self._table.out(prefix, obj)

    async def delete(self, path: str, **pairs: Any) -> None:
        with self._traced("delete", path):
            await self._on("delete", path, lambda s, p: s.delete(p, **pairs))

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        with self._traced("list", path):
            if pairs.get("list_mode") == "prefix":
                return self._list_prefix(path, pairs)
            return self._list_dir(path, pairs)

    def _list_dir(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        table = self._table
        prefix, store, inner = table.route("list", path, directory=True)
        mount_dirs = table.mount_dirs(path)
        listing = store.list(inner, **pairs)

        async def merged() -> AsyncIterator[Object]:
            seen: set[str] = set()
            async for obj in listing:
                out = table.out(prefix, obj)
                seen.add(out.path)
                # An object shadowed by a longer mount is not reachable: hide it.
                if table.reachable(prefix, out, directory_listing=True):
                    yield out
            for shown in mount_dirs:
                if shown not in seen:
                    yield Object(shown, ObjectMode.DIR)

        return merged()

    def _list_prefix(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        table = self._table
        walk_plan = table.prefix_walk(path)

        async def walk() -> AsyncIterator[Object]:
            for prefix, store, inner in walk_plan:
                async for obj in store.list(inner, **pairs):
                    out = table.out(prefix, obj)
                    if table.reachable(prefix, out, directory_listing=False):
                        yield out

        return walk()

    async def _stream(self, op: str, src: str, dst: str, pairs: dict[str, Any]) -> None:
        sp, s_store, s_path = self._table.route(op, src)
        dp, d_store, d_path = self._table.route(op, dst)
        if s_store is d_store and sp == dp:
            if op == "copy" and isinstance(s_store, AsyncCopier):
                await call_child(
                    s_store, op, src, lambda s: cast(AsyncCopier, s).copy(s_path, d_path, **pairs)
                )
                return
            if op == "move" and isinstance(s_store, AsyncMover):
                await call_child(
                    s_store, op, src, lambda s: cast(AsyncMover, s).move(s_path, d_path, **pairs)
                )
                return
        # Across mounts the bytes go through the destination's write: pass on the
        # pairs it accepts there (sync, content_type...); refuse the others by name.
        self._table.check_crossing_pairs(op, src, dp, d_store.metadata().capability, pairs)
        async with await s_store.open_reader(s_path) as reader:
            await d_store.write(d_path, reader, **pairs)
        if op == "move":
            await s_store.delete(s_path)


class _AsyncRouterCopier(AsyncRouter, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("copy", src):
            await self._stream("copy", src, dst, pairs)


class _AsyncRouterMover(AsyncRouter, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        with self._traced("move", src):
            await self._stream("move", src, dst, pairs)


class _AsyncRouterAppender(AsyncRouter, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        with self._traced("append", path):
            prefix, obj = await self._on(
                "append", path, lambda s, p: cast(AsyncAppender, s).append(p, data, **pairs)
            )
            return self._table.out(prefix, obj)


class _AsyncRouterDirer(AsyncRouter, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        with self._traced("create_dir", path):
            prefix, obj = await self._on(
                "create_dir", path, lambda s, p: cast(AsyncDirer, s).create_dir(p, **pairs)
            )
            return self._table.out(prefix, obj)


class _AsyncRouterSegmenter(AsyncRouter, AsyncSegmenter):
    """An upload runs on the mount of its path; its id is the mount's."""

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        with self._traced("create_multipart", path):
            prefix, mp = await self._on(
                "create_multipart",
                path,
                lambda s, p: cast(AsyncSegmenter, s).create_multipart(p, **pairs),
            )
            return self._table.upload_out(prefix, mp)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        with self._traced("write_multipart", multipart.path):
            _, store, mp = self._table.upload("write_multipart", multipart)
            return await call_child(
                store,
                "write_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).write_multipart(mp, number, data, **pairs),
            )

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        with self._traced("complete_multipart", multipart.path):
            prefix, store, mp = self._table.upload("complete_multipart", multipart)
            obj = await call_child(
                store,
                "complete_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).complete_multipart(mp, parts, **pairs),
            )
            return self._table.out(prefix, obj)

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        with self._traced("abort_multipart", multipart.path):
            _, store, mp = self._table.upload("abort_multipart", multipart)
            await call_child(
                store,
                "abort_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).abort_multipart(mp, **pairs),
            )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        with self._traced("list_multipart", multipart.path):
            _, store, mp = self._table.upload("list_multipart", multipart)
            return call_listing(
                store,
                "list_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).list_multipart(mp, **pairs),
            )


class _AsyncRouterLinker(AsyncRouter, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        with self._traced("create_link", path):
            inner_target = self._table.link_target(path, target)
            prefix, obj = await self._on(
                "create_link",
                path,
                lambda s, p: cast(AsyncLinker, s).create_link(p, inner_target, **pairs),
            )
            return self._table.out(prefix, obj)


class _AsyncRouterPresigner(AsyncRouter, AsyncPresigner):
    async def presign_read(self, path: str, **pairs: Any) -> str:
        with self._traced("presign_read", path):
            return (
                await self._on(
                    "presign_read",
                    path,
                    lambda s, p: cast(AsyncPresigner, s).presign_read(p, **pairs),
                )
            )[1]

    async def presign_write(self, path: str, **pairs: Any) -> str:
        with self._traced("presign_write", path):
            return (
                await self._on(
                    "presign_write",
                    path,
                    lambda s, p: cast(AsyncPresigner, s).presign_write(p, **pairs),
                )
            )[1]


AsyncRouter._capability_mixins = {
    Copier: _AsyncRouterCopier,
    Mover: _AsyncRouterMover,
    Segmenter: _AsyncRouterSegmenter,
    Appender: _AsyncRouterAppender,
    Direr: _AsyncRouterDirer,
    Linker: _AsyncRouterLinker,
    Presigner: _AsyncRouterPresigner,
}
