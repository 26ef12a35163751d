"""The azblob service: Azure Blob Storage on adlfs and the azure-storage-blob SDK.

adlfs's ``AzureBlobFileSystem`` connects (credentials, the environment, its event loop
thread and the SDK's async ``BlobServiceClient``); the operations call that client
directly, because they need what adlfs's file-system view hides: keys that end with
``/``, lazy paged listings, block staging with bounded memory, append blobs, content
type and user metadata on every write.

Connection string: ``azblob://CONTAINER/WORK_DIR/?endpoint=URL&credential=...``; see
:mod:`storager.services.azblob._credential` for the credential's forms.

Directories are prefixes of keys; ``create_dir`` also writes an empty marker blob whose
key ends with ``/`` (with ``hdi_isfolder=true`` metadata, as adlfs and ADLS expect).
"""

from __future__ import annotations

import asyncio
import io
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from adlfs import AzureBlobFileSystem

from storager._errors import PairInvalidError, StorageError
from storager._object import Object
from storager._protocols import IoCallback, WriteData
from storager._streams import CHUNK_SIZE, RangeReader
from storager.aio._native import async_chunks
from storager.services.azblob._blocks import Chunk, run, submit
from storager.services.azblob._credential import adlfs_options
from storager.services.azblob._errors import map_azure_error
from storager.services.azblob._generated import AzblobGenerated
from storager.services.azblob._ops import Blobs, limit_retries

if TYPE_CHECKING:
    from storager.aio._native import NativeAsync

__all__ = ["AzblobStorage"]

logger = logging.getLogger("storager.services.azblob")

T = TypeVar("T")

SERVICE = "azblob"
#: Default size of the blocks a write stages.
BLOCK_SIZE = 4 << 20
#: Azure's largest block (service version 2019-12-12 and later).
BLOCK_SIZE_MAX = 4000 << 20
#: The buffer of open_reader: each refill is one ranged download.
READ_BUFFER = 1 << 20
#: Default of the retry_max pair.
RETRY_MAX = 3


class AzblobStorage(AzblobGenerated):
    """A store in one Azure Blob container; see the module docstring.

    Example:
        >>> store = AzblobStorage(
        ...     name="data",
        ...     endpoint="http://127.0.0.1:10000/devstoreaccount1",
        ...     credential="shared_key:devstoreaccount1:KEY",
        ... )
        >>> store.write("a.txt", b"hi").content_length
        2
    """

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        account_name: str | None,
        block_size: int | None,
        retry_max: int | None,
    ) -> None:
        if not name:
            raise PairInvalidError("new", SERVICE, "", "pair 'name' (the container) is empty")
        if block_size is not None and not 1 <= block_size <= BLOCK_SIZE_MAX:
            raise PairInvalidError(
                "new", SERVICE, "", f"pair 'block_size' must be 1 to {BLOCK_SIZE_MAX}"
            )
        self._block_size = block_size or BLOCK_SIZE
        options = adlfs_options(credential, endpoint, account_name)
        try:
            self._fs = AzureBlobFileSystem(
                **options, skip_instance_cache=True, use_listings_cache=False
            )
        except Exception as exc:
            # The cause may quote the connection string, key included: drop it.
            logger.debug("azblob client construction failed: %s", type(exc).__name__)
            raise PairInvalidError(
                "new", SERVICE, "", "cannot build the Azure client from these pairs"
            ) from None
        self._name = name
        self._loop: asyncio.AbstractEventLoop = self._fs.loop
        self._retry_max = RETRY_MAX if retry_max is None else retry_max
        limit_retries(self._fs.service_client, self._retry_max)
        self._container = self._fs.service_client.get_container_client(name)
        self._blobs = Blobs(self._container, self._rel, self._block_size)
        #: Secret: what the native async store connects with (None: adlfs's chain).
        self._connection_string: str | None = options.get("connection_string")

    def _close(self) -> None:
        try:
            self._run(self._fs.service_client.close())
            # adlfs made these only for its own credential chain (DefaultAzureCredential...).
            credential = getattr(self._fs, "credential", None)
            if credential is not None and hasattr(credential, "close"):
                self._run(credential.close())
            sync_credential = getattr(self._fs, "sync_credential", None)
            if sync_credential is not None and hasattr(sync_credential, "close"):
                sync_credential.close()
        except Exception as exc:  # closing must not fail the caller
            logger.debug("azblob close: %s", type(exc).__name__)
        _detach_finalizers(self._fs)

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_azure_error(exc, op, path)

    def _native_async(self) -> NativeAsync | None:
        """Return the async twin that runs on the caller's loop (see ``_async``).

        Only a store connected by a connection string has one (every ``credential``
        form, and the environment's connection string or account key); adlfs's
        credential chain (DefaultAzureCredential...) keeps the threaded view.
        """
        if self._connection_string is None:
            return None
        from storager.services.azblob._async import AzblobAsync

        return AzblobAsync(self, self._connection_string, self._retry_max, self._block_size)

    # -- helpers -----------------------------------------------------------------------

    def _run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on adlfs's event loop thread and return its result."""
        return run(self._loop, awaitable)

    def _chunks(
        self, op: str, path: str, data: WriteData, size: int | None, io: IoCallback | None
    ) -> AsyncIterator[Chunk]:
        return async_chunks(
            op,
            SERVICE,
            path,
            data,
            size=size,
            io_callback=io,
            chunk_size=min(CHUNK_SIZE, self._block_size),
        )

    # -- Storager: the coroutines of _ops, run on adlfs's loop --------------------------

    def _stat(self, path: str) -> Object:
        return self._run(self._blobs.stat(path))

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        return self._run(self._blobs.read(path, io_callback=io_callback, offset=offset, size=size))

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        pinned = self._run(self._blobs.open_range(path, offset=offset, size=size))

        def fetch(pos: int, n: int) -> bytes:
            try:
                return self._run(self._blobs.fetch(pinned, pos, n))
            except StorageError:
                raise
            except Exception as exc:
                raise self._map_error(exc, "read", path) from exc

        return io.BufferedReader(RangeReader(fetch, pinned.length), buffer_size=READ_BUFFER)

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        chunks = self._chunks("write", path, data, size, io_callback)
        return self._run(
            self._blobs.write(path, chunks, content_type=content_type, user_metadata=user_metadata)
        )

    def _delete(self, path: str) -> None:
        self._run(self._blobs.delete(path))

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        pages = self._blobs.list_pages(path, list_mode=list_mode)
        try:
            while (page := self._run(_next_page(pages))) is not None:
                yield from page
        finally:
            # Not waited for: a generator may be finalised on the loop's own thread.
            submit(self._loop, pages.aclose())

    # -- Copier, Mover, Appender, Direr --------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        self._run(self._blobs.copy("copy", src, dst))

    def _move(self, src: str, dst: str) -> None:
        self._run(self._blobs.move(src, dst))

    def _append(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
    ) -> Object:
        chunks = self._chunks("append", path, data, size, io_callback)
        return self._run(self._blobs.append(path, chunks, content_type=content_type))

    def _create_dir(self, path: str) -> Object:
        return self._run(self._blobs.create_dir(path))

    # -- the questions of storager._names (exclusive_names) ----------------------------

    def _probe_object(self, op: str, path: str) -> bool:
        return self._run(self._blobs.is_object(path))

    def _probe_children(self, op: str, prefix: str) -> bool:
        return self._run(self._blobs.any_under(prefix))


async def _next_page(pages: AsyncIterator[list[Object]]) -> list[Object] | None:
    return await anext(pages, None)


def _detach_finalizers(fs: object) -> None:
    """Drop adlfs's exit-time finalizers of ``fs``, now that the store closed its clients.

    adlfs registers ``weakref.finalize(fs, ..., fs)``: the finalizer holds ``fs`` itself,
    so without this every store would keep its file system and clients alive until the
    interpreter exits.
    """
    registry = getattr(weakref.finalize, "_registry", None)
    if not isinstance(registry, dict):
        return
    for finalizer in list(registry):
        info = finalizer.peek()
        if info is not None and info[0] is fs:
            finalizer.detach()
