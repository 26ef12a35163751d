"""The native async redis store: the service's operations on the caller's event loop.

``RedisStorage.aio`` (and ``storager.open_async("redis://...")``) is a
:class:`RedisAsync`: no thread hop per call, and per running event loop a link held in
a :class:`~storager.aio.LoopLocal`: a stack of redis-py's asyncio connections to a
standalone server (:class:`AsyncServerLink`), or redis-py's asyncio ``RedisCluster``
(:class:`AsyncClusterLink`), with the same packing, keys, scripts, manifest and listing
walk as the sync store.

What the two sides share lives in the modules they both import (``_keys``,
``_manifest``, ``_scripts``, ``_reader.ChunkRange``, ``_listing.IndexWalk``,
``_link.pack_commands``). Every change (a write in ``_writer``; delete, copy, move
and create_dir in ``_changes``) and every script with its reload is a plan
(``_plan``), written once and carried out here by ``arun``, which awaits the link and
the caller's data, and in the sync store by ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio
import redis.asyncio.cluster
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback
from storager.aio._loop_local import LoopLocal
from storager.aio._native import NativeCopier, NativeDirer, NativeMover, async_chunks
from storager.aio._range_reader import RangeAsyncReader
from storager.services.redis import _changes as changes
from storager.services.redis._connection import ConnectOptions
from storager.services.redis._keys import encode_path
from storager.services.redis._link import AsyncLink, Command, pack_commands
from storager.services.redis._listing import IndexWalk
from storager.services.redis._manifest import STAT_FIELDS, Manifest
from storager.services.redis._plan import arun
from storager.services.redis._reader import ChunkMissing, ChunkRange, check_chunks
from storager.services.redis._scripts import Scripts
from storager.services.redis._writer import write as write_plan

if TYPE_CHECKING:
    from storager.services.redis import RedisStorage

__all__ = ["AsyncClusterLink", "AsyncServerLink", "RedisAsync"]

SERVICE = "redis"
_READ_FIELDS = (b"kind", b"size", b"gen", b"csize", b"data")


class AsyncClusterLink:
    """One event loop's client of a Redis Cluster (redis-py's asyncio ``RedisCluster``)."""

    def __init__(self, options: ConnectOptions) -> None:
        kwargs: dict[str, Any] = {
            "host": options.host,
            "port": options.port,
            "username": options.username,
            "password": options.password,
            "socket_timeout": options.timeout,
            "socket_connect_timeout": options.timeout,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
            "max_connections": options.max_connections,
        }
        if options.tls:
            kwargs.update(ssl=True, ssl_ca_certs=options.tls_ca_file)
        self._client = redis.asyncio.cluster.RedisCluster(**kwargs)

    async def call(self, *args: Any) -> Any:
        """Send one command, routed by its keys' slot."""
        return await self._client.execute_command(*args)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` together, each to its slot's node."""
        return await self._run(commands, transaction=False, raise_on_error=True)

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Run ``commands`` in one MULTI/EXEC (their keys share one slot)."""
        return await self._run(commands, transaction=True, raise_on_error=False)

    async def _run(
        self, commands: Sequence[Command], *, transaction: bool, raise_on_error: bool
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=transaction)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=raise_on_error))

    async def aclose(self) -> None:
        """Close the client's connections."""
        with contextlib.suppress(Exception):
            await self._client.aclose()


class AsyncServerLink:
    """One event loop's connections to a standalone server (see ``_link.ServerLink``)."""

    def __init__(self, options: ConnectOptions) -> None:
        kwargs: dict[str, Any] = {
            "host": options.host,
            "port": options.port,
            "db": options.db,
            "username": options.username,
            "password": options.password,
            "socket_timeout": None,  # see _exchange
            "socket_connect_timeout": options.timeout,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
        }
        self._class: Any = redis.asyncio.Connection
        if options.tls:
            kwargs["ssl_ca_certs"] = options.tls_ca_file
            self._class = redis.asyncio.SSLConnection
        self._kwargs = kwargs
        self._slots = asyncio.Semaphore(options.max_connections)
        self._wait = options.timeout
        self._idle: list[Any] = []
        self._all: list[Any] = []

    async def call(self, *args: Any) -> Any:
        """Send one command; return its reply (see ``Link.call``)."""
        replies = await self._exchange((args,))
        if isinstance(replies[0], rx.ResponseError):
            raise replies[0]
        return replies[0]

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one round trip (see ``Link.pipeline``)."""
        replies = await self._exchange(commands)
        for reply in replies:
            if isinstance(reply, rx.ResponseError):
                raise reply
        return replies

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Run ``commands`` in one MULTI/EXEC (see ``Link.transaction``)."""
        replies = await self._exchange([("MULTI",), *commands, ("EXEC",)])
        for reply in replies:
            if isinstance(reply, rx.ResponseError):
                raise reply
        return list(replies[-1])

    async def _exchange(self, commands: Sequence[Command]) -> list[Any]:
        # One deadline per round trip (asyncio.timeout), not redis-py's socket_timeout,
        # which wraps every send in wait_for: a task per call, a third of a call's cost.
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._wait):
                    await self._slots.acquire()
            except TimeoutError:
                raise rx.MaxConnectionsError(
                    "No connection available: all max_connections in use"
                ) from None
        else:
            await self._slots.acquire()
        try:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self._wait):
                    await connection.send_packed_command(pack_commands(commands), False)
                    replies: list[Any] = []
                    for _ in commands:
                        try:
                            replies.append(await connection.read_response())
                        except rx.ResponseError as exc:
                            replies.append(exc)
            except TimeoutError:
                await connection.disconnect(nowait=True)
                raise rx.TimeoutError("Timeout waiting for the server's reply") from None
            except BaseException:
                await connection.disconnect(nowait=True)
                raise
            finally:
                self._idle.append(connection)
            return replies
        finally:
            self._slots.release()

    async def _connection(self) -> Any:
        if not self._idle:
            connection = self._class(**self._kwargs)
            self._all.append(connection)
            return connection
        connection = self._idle.pop()
        try:
            if connection.is_connected and await connection.can_read():
                # EOF or a stray reply: the server closed it, or a call was cut short.
                await connection.disconnect(nowait=True)
        except BaseException:
            # Cancelled (or failed) while looking: its socket's state is unknown. It goes
            # back idle first (never lost until aclose), then closed, to reconnect on use.
            self._idle.append(connection)
            await connection.disconnect(nowait=True)
            raise
        return connection

    async def aclose(self) -> None:
        """Disconnect every connection."""
        for connection in self._all:
            with contextlib.suppress(Exception):
                await connection.disconnect()
        self._all.clear()
        self._idle.clear()


async def _close_link(link: AsyncLink) -> None:
    await link.aclose()


class RedisAsync(NativeCopier, NativeMover, NativeDirer):
    """The async twin of a standalone :class:`RedisStorage`; see the module docstring."""

    _sync: RedisStorage

    def __init__(self, store: RedisStorage, options: ConnectOptions) -> None:
        super().__init__(store)
        self._options = options
        self._keys = store._keys
        self._links: LoopLocal[AsyncLink] = LoopLocal(self._connect, _close_link)

    async def _connect(self) -> AsyncLink:
        if self._options.cluster:
            link: AsyncLink = AsyncClusterLink(self._options)
            await link.call("PING")  # learns the slot map
            return link
        return AsyncServerLink(self._options)

    async def _link(self) -> AsyncLink:
        return await self._links.get()

    async def _aclose(self) -> None:
        await self._links.aclose()

    # -- reads ----------------------------------------------------------------------------

    async def _has_children(self, link: AsyncLink, path: str) -> bool:
        return await arun(changes.has_children(self._keys, path), link)

    async def _stat(self, path: str) -> Object:
        link = await self._link()
        key = self._keys.manifest(encode_path(path))
        manifest = Manifest.parse(await link.call("HMGET", key, *STAT_FIELDS))
        if manifest is not None:
            return manifest.to_object(self._sync._rel(path))
        if await self._has_children(link, path):
            return Object(self._sync._rel(path.rstrip("/") + "/"), ObjectMode.DIR)
        if not path.endswith("/"):
            marker = Manifest.parse(await link.call("HMGET", key + b"/", *STAT_FIELDS))
            if marker is not None:
                return marker.to_object(self._sync._rel(path + "/"))
        raise NotFoundError("stat", SERVICE, path)

    async def _layout(self, op: str, path: str) -> tuple[int, bytes | None, bytes | None, int]:
        link = await self._link()
        kind, size, generation, chunk_size, data = await link.call(
            "HMGET", self._keys.manifest(encode_path(path)), *_READ_FIELDS
        )
        if kind != b"f":
            if kind is not None or await self._has_children(link, path):
                raise ObjectModeInvalidError(op, SERVICE, path, "is a directory")
            raise NotFoundError(op, SERVICE, path)
        return int(size), data, generation, int(chunk_size or 0)

    async def _read_range(self, op: str, path: str, chunks: ChunkRange) -> bytes:
        out = bytearray()
        try:
            for commands, wanted in chunks.batches():
                check_chunks(out, await (await self._link()).pipeline(commands), wanted)
        except ChunkMissing:
            raise NotFoundError(
                op, SERVICE, path, "the object was replaced and the version being read was swept"
            ) from None
        return bytes(out)

    async def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        total, data, generation, chunk_size = await self._layout("read", path)
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        if data is not None:
            out = data[start : start + length]
        else:
            assert generation is not None
            chunks = ChunkRange(self._keys, generation, chunk_size, total, start, length)
            out = await self._read_range("read", path, chunks)
        if io_callback is not None and out:
            io_callback(len(out))
        return out

    async def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> AsyncReader:
        total, data, generation, chunk_size = await self._layout("open_reader", path)
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)

        async def fetch(position: int, count: int) -> bytes:
            if data is not None:
                return data[start + position : start + position + count]
            assert generation is not None
            chunks = ChunkRange(self._keys, generation, chunk_size, total, start + position, count)
            return await self._read_range("open_reader", path, chunks)

        return RangeAsyncReader(fetch, length, buffer=max(chunk_size, 1 << 16))

    async def _list(self, path: str, *, list_mode: str | None) -> AsyncIterator[Object]:
        dir_mode = list_mode != "prefix"
        prefix = path if not dir_mode or path.endswith("/") else path + "/"
        keys = self._keys
        link = await self._link()
        if await link.call("ZCARD", keys.expiring):
            await arun(
                Scripts.prune.steps([keys.index, keys.expiring], [keys.manifest_prefix]), link
            )
        walk = IndexWalk(keys, encode_path(prefix), dir_mode, self._sync._rel)
        while not walk.done:
            members: list[bytes] = await (await self._link()).call(*walk.page_command())
            if not members:
                return
            entries, files = walk.split(members)
            replies = (
                await (await self._link()).pipeline(walk.describe_commands(files)) if files else []
            )
            for obj in walk.objects(entries, files, replies):
                yield obj

    # -- writes ---------------------------------------------------------------------------

    async def _write(
        self,
        path: str,
        data: AsyncWriteData,
        *,
        content_md5: str | None,
        content_type: str | None,
        expire: int | None,
        if_match: str | None,
        if_none_match: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        sync = self._sync
        plan = write_plan(
            sync._layout_of_writes,
            path,
            data,
            shown=sync._rel(path),
            etag=sync._new_etag(),
            size=size,
            content_md5=content_md5,
            content_type=content_type,
            expire=expire,
            if_match=if_match,
            if_none_match=if_none_match,
            io_callback=io_callback,
            user_metadata=user_metadata,
        )
        written = await arun(
            plan,
            await self._link(),
            lambda: async_chunks("write", SERVICE, path, data, size=size, io_callback=io_callback),
        )
        await self._sweep_now_and_then()
        return written

    async def _delete(self, path: str) -> None:
        await arun(changes.delete(self._keys, path), await self._link())
        await self._sweep_now_and_then()

    async def _copy(self, src: str, dst: str) -> None:
        await self._copy_or_move("copy", src, dst)

    async def _move(self, src: str, dst: str) -> None:
        await self._copy_or_move("move", src, dst)

    async def _copy_or_move(self, op: str, src: str, dst: str) -> None:
        await arun(
            changes.copy_or_move(self._keys, op, src, dst, self._sync._new_etag()),
            await self._link(),
        )
        await self._sweep_now_and_then()

    async def _create_dir(self, path: str) -> Object:
        plan = changes.create_dir(self._keys, path, self._sync._rel, self._sync._new_etag())
        return await arun(plan, await self._link())

    async def _sweep_now_and_then(self) -> None:
        # The sweep is rare (at most every 10 s) and long: the sync store runs it, on a thread.
        if time.monotonic() >= self._sync._next_sweep:
            await asyncio.to_thread(self._sync._sweep_now_and_then)
