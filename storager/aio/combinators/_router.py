"""AsyncRouter: Router's mount table (``storager.combinators._router.MountTable``), awaited."""

from __future__ import annotations

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
from storager.aio.combinators._base import AsyncWrapper, _common, async_capabilities_of
from storager.combinators._base import meet_capability, ops_of, served_by
from storager.combinators._router import MountTable

__all__ = ["AsyncRouter"]

T = TypeVar("T")

#: Capabilities the async router has when every mount has them, as the sync Router.
_ALL_MOUNTS = frozenset({Appender, Direr, Segmenter, Linker, Presigner})


class AsyncRouter(AsyncWrapper):
    """Mount async stores under path prefixes: the twin of :class:`~storager.combinators.Router`.

    The same mount table, routing, listing of mount points and cross-mount copy and move
    (streamed through the client: the source's reader is the destination's data).
    Appender, Direr, Segmenter, Linker and Presigner when every mount is (uploads,
    links and presigned URLs stay inside one mount, as with the sync Router: a URL is
    the mount's own, for the path inside the mount).
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
        return frozenset({Copier, Mover}) | (_common(list(mounts.values())) & _ALL_MOUNTS)

    def children(self) -> Mapping[str, AsyncStorager]:
        return self._table.children()

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

    async def _on(
        self,
        op: str,
        path: str,
        fn: Callable[[AsyncStorager, str], Awaitable[T]],
        **kw: Any,
    ) -> tuple[str, T]:
        prefix, store, inner = self._table.route(op, path, **kw)
        served_by.set(prefix or "/")
        return prefix, await fn(store, inner)

    # -- Storager -----------------------------------------------------------------------

    async def read(self, path: str, **pairs: Any) -> bytes:
        return (await self._on("read", path, lambda s, p: s.read(p, **pairs)))[1]

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        return (await self._on("open_reader", path, lambda s, p: s.open_reader(p, **pairs)))[1]

    async def stat(self, path: str, **pairs: Any) -> Object:
        mount = self._table.mount_point(path)
        if mount is not None:
            return mount
        prefix, obj = await self._on("stat", path, lambda s, p: s.stat(p, **pairs))
        return self._table.out(prefix, obj)

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        prefix, obj = await self._on("write", path, lambda s, p: s.write(p, data, **pairs))
        return self._table.out(prefix, obj)

    async def delete(self, path: str, **pairs: Any) -> None:
        await self._on("delete", path, lambda s, p: s.delete(p, **pairs))

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        if pairs.get("list_mode") == "prefix":
            return self._list_prefix(path, pairs)
        return self._list_dir(path, pairs)

    async def _list_dir(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        prefix, store, inner = self._table.route("list", path, directory=True)
        mount_dirs = self._table.mount_dirs(path)
        seen: set[str] = set()
        async for obj in store.list(inner, **pairs):
            out = self._table.out(prefix, obj)
            seen.add(out.path)
            # An object shadowed by a longer mount is not reachable: hide it.
            if self._table.reachable(prefix, out, directory_listing=True):
                yield out
        for shown in mount_dirs:
            if shown not in seen:
                yield Object(shown, ObjectMode.DIR)

    async def _list_prefix(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        for prefix, store, inner in self._table.prefix_walk(path):
            async for obj in store.list(inner, **pairs):
                out = self._table.out(prefix, obj)
                if self._table.reachable(prefix, out, directory_listing=False):
                    yield out

    async def _stream(self, op: str, src: str, dst: str, pairs: dict[str, Any]) -> None:
        sp, s_store, s_path = self._table.route(op, src)
        dp, d_store, d_path = self._table.route(op, dst)
        if s_store is d_store and sp == dp:
            if op == "copy" and isinstance(s_store, AsyncCopier):
                await s_store.copy(s_path, d_path, **pairs)
                return
            if op == "move" and isinstance(s_store, AsyncMover):
                await s_store.move(s_path, d_path, **pairs)
                return
        self._table.check_crossing_pairs(op, src, dp, d_store.metadata().capability, pairs)
        async with await s_store.open_reader(s_path) as reader:
            await d_store.write(d_path, reader, **pairs)
        if op == "move":
            await s_store.delete(s_path)


class _AsyncRouterCopier(AsyncRouter, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        await self._stream("copy", src, dst, pairs)


class _AsyncRouterMover(AsyncRouter, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        await self._stream("move", src, dst, pairs)


class _AsyncRouterAppender(AsyncRouter, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        prefix, obj = await self._on(
            "append", path, lambda s, p: cast(AsyncAppender, s).append(p, data, **pairs)
        )
        return self._table.out(prefix, obj)


class _AsyncRouterDirer(AsyncRouter, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        prefix, obj = await self._on(
            "create_dir", path, lambda s, p: cast(AsyncDirer, s).create_dir(p, **pairs)
        )
        return self._table.out(prefix, obj)


class _AsyncRouterSegmenter(AsyncRouter, AsyncSegmenter):
    """An upload runs on the mount of its path; its id is the mount's."""

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        prefix, mp = await self._on(
            "create_multipart",
            path,
            lambda s, p: cast(AsyncSegmenter, s).create_multipart(p, **pairs),
        )
        return self._table.upload_out(prefix, mp)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        _, store, mp = self._table.upload("write_multipart", multipart)
        return await cast(AsyncSegmenter, store).write_multipart(mp, number, data, **pairs)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        prefix, store, mp = self._table.upload("complete_multipart", multipart)
        obj = await cast(AsyncSegmenter, store).complete_multipart(mp, parts, **pairs)
        return self._table.out(prefix, obj)

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        _, store, mp = self._table.upload("abort_multipart", multipart)
        await cast(AsyncSegmenter, store).abort_multipart(mp, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        _, store, mp = self._table.upload("list_multipart", multipart)
        return cast(AsyncSegmenter, store).list_multipart(mp, **pairs)


class _AsyncRouterLinker(AsyncRouter, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        inner_target = self._table.link_target(path, target)
        prefix, obj = await self._on(
            "create_link",
            path,
            lambda s, p: cast(AsyncLinker, s).create_link(p, inner_target, **pairs),
        )
        return self._table.out(prefix, obj)


class _AsyncRouterPresigner(AsyncRouter, AsyncPresigner):
    async def presign_read(self, path: str, **pairs: Any) -> str:
        return (
            await self._on(
                "presign_read", path, lambda s, p: cast(AsyncPresigner, s).presign_read(p, **pairs)
            )
        )[1]

    async def presign_write(self, path: str, **pairs: Any) -> str:
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
