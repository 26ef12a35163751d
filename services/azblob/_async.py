"""The native async azblob store: the operations of ``_ops`` on the caller's event loop.

``AzblobStorage.aio`` (and ``storager.open_async("azblob://...")``) is an
:class:`AzblobAsync`: no thread hop, and one SDK client (``azure.storage.blob.aio``,
an aiohttp session) per running event loop, made from the store's connection string on
first use and closed with its loop or with the store (:class:`~storager.aio.LoopLocal`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azure.storage.blob.aio import BlobServiceClient

from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import StorageError
from storager._object import Object
from storager._protocols import IoCallback
from storager._streams import CHUNK_SIZE
from storager.aio._loop_local import LoopLocal
from storager.aio._native import (
    NativeAppender,
    NativeCopier,
    NativeDirer,
    NativeMover,
    async_chunks,
)
from storager.aio._range_reader import RangeAsyncReader
from storager.services.azblob._errors import map_azure_error
from storager.services.azblob._ops import Blobs, limit_retries

if TYPE_CHECKING:
    from storager.services.azblob import AzblobStorage

__all__ = ["AzblobAsync"]

SERVICE = "azblob"
#: Bytes per ranged request of a reader (its buffer).
READ_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class _Client:
    """One loop's SDK client and the operations on its container."""

    service: BlobServiceClient
    blobs: Blobs


async def _disconnect(client: _Client) -> None:
    await client.service.close()


class AzblobAsync(NativeCopier, NativeMover, NativeAppender, NativeDirer):
    """The async twin of an :class:`AzblobStorage`; see the module docstring.

    A reader from ``open_reader`` fetches through the client of the loop that reads,
    so it too may be used from several loops in turn.
    """

    def __init__(
        self, store: AzblobStorage, connection_string: str, retry_max: int, block_size: int
    ) -> None:
        super().__init__(store)
        self._connection_string = connection_string
        self._retry_max = retry_max
        self._block_size = block_size
        self._container_name = store.metadata().name
        self._clients: LoopLocal[_Client] = LoopLocal(self._connect, _disconnect)

    async def _connect(self) -> _Client:
        service = BlobServiceClient.from_connection_string(self._connection_string)
        limit_retries(service, self._retry_max)
        container = service.get_container_client(self._container_name)
        return _Client(service, Blobs(container, self._sync._rel, self._block_size))

    async def _blobs(self) -> Blobs:
        return (await self._clients.get()).blobs

    async def _aclose(self) -> None:
        await self._clients.aclose()

    def _chunks(
        self, op: str, path: str, data: AsyncWriteData, size: int | None, io: IoCallback | None
    ) -> AsyncIterator[bytes | bytearray | memoryview]:
        return async_chunks(
            op,
            SERVICE,
            path,
            data,
            size=size,
            io_callback=io,
            chunk_size=min(CHUNK_SIZE, self._block_size),
        )

    # -- the operations -----------------------------------------------------------------

    async def _stat(self, path: str) -> Object:
        return await (await self._blobs()).stat(path)

    async def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        blobs = await self._blobs()
        return await blobs.read(path, io_callback=io_callback, offset=offset, size=size)

    async def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> AsyncReader:
        pinned = await (await self._blobs()).open_range(path, offset=offset, size=size)

        async def fetch(pos: int, n: int) -> bytes:
            # The client of the loop reading now, not of the one that opened the reader.
            try:
                return await (await self._blobs()).fetch(pinned, pos, n)
            except StorageError:
                raise
            except Exception as exc:
                raise map_azure_error(exc, "read", path) from exc

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
        blobs = await self._blobs()
        chunks = self._chunks("write", path, data, size, io_callback)
        return await blobs.write(
            path, chunks, content_type=content_type, user_metadata=user_metadata
        )

    async def _delete(self, path: str) -> None:
        await (await self._blobs()).delete(path)

    async def _list(self, path: str, *, list_mode: str | None) -> AsyncIterator[Object]:
        blobs = await self._blobs()
        async for page in blobs.list_pages(path, list_mode=list_mode):
            for obj in page:
                yield obj

    async def _copy(self, src: str, dst: str) -> None:
        await (await self._blobs()).copy("copy", src, dst)

    async def _move(self, src: str, dst: str) -> None:
        await (await self._blobs()).move(src, dst)

    async def _append(
        self,
        path: str,
        data: AsyncWriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
    ) -> Object:
        blobs = await self._blobs()
        chunks = self._chunks("append", path, data, size, io_callback)
        return await blobs.append(path, chunks, content_type=content_type)

    async def _create_dir(self, path: str) -> Object:
        return await (await self._blobs()).create_dir(path)
