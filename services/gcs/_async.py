"""The native async gcs store: the operations of ``_ops`` on the caller's event loop.

``GcsStorage.aio`` (and ``storager.open_async("gcs://...")``) is a :class:`GcsAsync`:
no thread hop, and one gcsfs client in asynchronous mode (an aiohttp session) per
running event loop, made on first use and closed with its loop or with the store
(:class:`~storager.aio.LoopLocal`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from gcsfs.core import GCSFileSystem

from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import StorageError
from storager._object import Object
from storager._protocols import IoCallback
from storager.aio._loop_local import LoopLocal
from storager.aio._native import (
    NativeCopier,
    NativeDirer,
    NativeMover,
    async_chunks,
)
from storager.aio._range_reader import RangeAsyncReader
from storager.services.gcs._errors import map_gcs_error
from storager.services.gcs._ops import Objects

if TYPE_CHECKING:
    from storager.services.gcs import GcsStorage

__all__ = ["GcsAsync"]

#: Bytes per ranged request of a reader (its buffer).
READ_BUFFER = 4 * 1024 * 1024


class GcsAsync(NativeCopier, NativeMover, NativeDirer):
    """The async twin of a :class:`GcsStorage`; see the module docstring."""

    def __init__(self, store: GcsStorage, options: Mapping[str, Any], chunk_size: int) -> None:
        super().__init__(store)
        self._options = dict(options)
        self._chunk_size = chunk_size
        self._bucket = store.metadata().name
        self._clients: LoopLocal[Objects] = LoopLocal(self._connect, _disconnect)

    async def _connect(self) -> Objects:
        # Credentials may read files or the metadata server: not on the loop.
        fs = await asyncio.to_thread(
            GCSFileSystem,
            asynchronous=True,
            skip_instance_cache=True,
            use_listings_cache=False,
            **self._options,
        )
        await fs._set_session()
        return Objects(fs, self._bucket, self._sync._rel, self._chunk_size)

    async def _objects(self) -> Objects:
        return await self._clients.get()

    async def _aclose(self) -> None:
        await self._clients.aclose()

    # -- the operations -----------------------------------------------------------------

    async def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        objects = await self._objects()
        return await objects.read(path, io_callback=io_callback, offset=offset, size=size)

    async def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> AsyncReader:
        pinned = await (await self._objects()).open_range(path, offset=offset, size=size)

        async def fetch(pos: int, n: int) -> bytes:
            # The client of the loop reading now, not of the one that opened the reader.
            try:
                return await (await self._objects()).fetch_pinned(pinned, pos, n)
            except StorageError:
                raise
            except Exception as exc:
                raise map_gcs_error(exc, "open_reader", path) from exc

        return RangeAsyncReader(fetch, pinned.length, buffer=READ_BUFFER)

    async def _write(
        self,
        path: str,
        data: AsyncWriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        objects = await self._objects()
        chunks = async_chunks(
            "write",
            "gcs",
            path,
            data,
            size=size,
            io_callback=io_callback,
            chunk_size=min(self._chunk_size, 1 << 20),
        )
        return await objects.write(
            path, chunks, content_type=content_type, user_metadata=user_metadata
        )

    async def _stat(self, path: str) -> Object:
        return await (await self._objects()).stat(path)

    async def _delete(self, path: str) -> None:
        await (await self._objects()).delete(path)

    async def _list(self, path: str, *, list_mode: str | None) -> AsyncIterator[Object]:
        objects = await self._objects()
        async for page in objects.list_pages(path, list_mode=list_mode):
            for obj in page:
                yield obj

    async def _copy(self, src: str, dst: str) -> None:
        await (await self._objects()).rewrite("copy", src, dst)

    async def _move(self, src: str, dst: str) -> None:
        await (await self._objects()).move(src, dst)

    async def _create_dir(self, path: str) -> Object:
        return await (await self._objects()).create_dir(path)


async def _disconnect(objects: Objects) -> None:
    fs = objects.fs
    session = fs._session
    fs._session = None
    if session is not None:
        await session.close()
    _detach_finalizers(fs)


def _detach_finalizers(fs: object) -> None:
    """Drop gcsfs's finalizer of ``fs``'s session, now closed (it holds the loop alive)."""
    registry = getattr(weakref.finalize, "_registry", None)
    if not isinstance(registry, dict):
        return
    for finalizer in list(registry):
        info = finalizer.peek()
        if info is not None and info[0] is fs:
            finalizer.detach()
