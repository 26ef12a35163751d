"""The gcs service: Google Cloud Storage through gcsfs.

gcsfs provides the authenticated, retrying HTTP client for GCS's JSON API and its
upload protocol; this module speaks the object API through it directly rather than
through gcsfs's file-system layer, so keys keep exact object-store meaning (a trailing
``/`` is part of a key, nothing is cached between calls) and every operation is one or
two requests.

Connection string: ``gcs://bucket/dir/?endpoint=http://127.0.0.1:4443&credential=token:anon``.
The ``credential`` forms are described in :mod:`storager.services.gcs._auth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from fsspec.asyn import sync
from gcsfs.core import GCSFileSystem

from storager._endpoints import check_endpoint
from storager._errors import PairInvalidError, StorageError
from storager._object import Object
from storager._protocols import IoCallback, WriteData
from storager._streams import RangeReader
from storager.aio._native import async_chunks
from storager.services.gcs._auth import token_for
from storager.services.gcs._errors import map_gcs_error
from storager.services.gcs._generated import GcsGenerated
from storager.services.gcs._ops import Objects
from storager.services.gcs._upload import CHUNK_ALIGN, DEFAULT_CHUNK_SIZE

if TYPE_CHECKING:
    from storager.aio._native import NativeAsync

__all__ = ["GcsStorage"]

logger = logging.getLogger("storager.services.gcs")

#: Bytes per ranged request of a reader (its buffer size).
_READ_BUFFER = 4 * 1024 * 1024
_CLOSE_TIMEOUT = 5.0


class GcsStorage(GcsGenerated):
    """A store over one GCS bucket; see the module docstring.

    Example:
        >>> store = GcsStorage(name="my-bucket", work_dir="/data/", credential="env")
        >>> store.write("a.txt", b"hi").content_length
        2
    """

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        project: str | None,
        chunk_size: int | None,
    ) -> None:
        if not name or "/" in name:
            raise PairInvalidError("new", "gcs", "", "pair 'name' must be a bucket name")
        if chunk_size is not None and (chunk_size <= 0 or chunk_size % CHUNK_ALIGN):
            raise PairInvalidError(
                "new", "gcs", "", f"pair 'chunk_size' must be a positive multiple of {CHUNK_ALIGN}"
            )
        if endpoint is not None:
            check_endpoint("gcs", endpoint)
        token = token_for(credential)
        self._name = name
        self._bucket = name
        self._chunk_size = chunk_size or DEFAULT_CHUNK_SIZE
        try:
            # gcsfs.core.GCSFileSystem, not the package's default class: that one probes
            # each bucket over gRPC first, which emulators do not answer.
            self._fs = GCSFileSystem(
                project=project or "",
                token=token,
                endpoint_url=endpoint.rstrip("/") if endpoint else None,
                skip_instance_cache=True,
                use_listings_cache=False,
            )
        except StorageError:
            raise
        except Exception as exc:
            raise map_gcs_error(exc, "new", "") from exc
        #: What the native async store makes its per-loop clients from.
        self._client_options: dict[str, Any] = {
            "project": project or "",
            "token": token,
            "endpoint_url": endpoint.rstrip("/") if endpoint else None,
        }
        self._objects = Objects(self._fs, name, self._rel, self._chunk_size)

    def _close(self) -> None:
        session = self._fs._session
        if session is not None:
            self._fs._session = None
            # On fsspec's loop thread: aiohttp sessions are not thread-safe.
            with contextlib.suppress(Exception):
                sync(self._fs.loop, session.close, timeout=_CLOSE_TIMEOUT)

    def _native_async(self) -> NativeAsync:
        """Return the async twin that runs on the caller's loop (see ``_async``)."""
        from storager.services.gcs._async import GcsAsync

        return GcsAsync(self, self._client_options, self._chunk_size)

    def _sync(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a coroutine function on fsspec's I/O loop and return its result."""
        return sync(self._fs.loop, func, *args, **kwargs)

    def _chunks(
        self, path: str, data: WriteData, size: int | None, io: IoCallback | None
    ) -> AsyncIterator[bytes | bytearray | memoryview]:
        return async_chunks(
            "write",
            "gcs",
            path,
            data,
            size=size,
            io_callback=io,
            chunk_size=min(self._chunk_size, 1 << 20),
        )

    # -- Storager: the coroutines of _ops, run on fsspec's loop --------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        data: bytes = self._sync(
            self._objects.read, path, io_callback=io_callback, offset=offset, size=size
        )
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        pinned = self._sync(self._objects.open_range, path, offset=offset, size=size)

        def fetch(pos: int, n: int) -> bytes:
            try:
                data: bytes = self._sync(self._objects.fetch_pinned, pinned, pos, n)
            except StorageError:
                raise
            except Exception as exc:
                raise map_gcs_error(exc, "open_reader", path) from exc
            return data

        return io.BufferedReader(RangeReader(fetch, pinned.length), buffer_size=_READ_BUFFER)

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
        chunks = self._chunks(path, data, size, io_callback)
        obj: Object = self._sync(
            self._objects.write,
            path,
            chunks,
            content_type=content_type,
            user_metadata=user_metadata,
        )
        return obj

    def _stat(self, path: str) -> Object:
        obj: Object = self._sync(self._objects.stat, path)
        return obj

    def _delete(self, path: str) -> None:
        self._sync(self._objects.delete, path)

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        pages = self._objects.list_pages(path, list_mode=list_mode)
        try:
            while (page := self._sync(anext, pages, None)) is not None:
                yield from page
        finally:
            # Not waited for: a generator may be finalised on the loop's own thread.
            asyncio.run_coroutine_threadsafe(_aclose(pages), self._fs.loop)

    # -- Copier, Mover, Direr -----------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        self._sync(self._objects.rewrite, "copy", src, dst)

    def _move(self, src: str, dst: str) -> None:
        self._sync(self._objects.move, src, dst)

    def _create_dir(self, path: str) -> Object:
        obj: Object = self._sync(self._objects.create_dir, path)
        return obj

    # -- the questions of storager._names (exclusive_names) ----------------------------

    def _probe_object(self, op: str, path: str) -> bool:
        found: bool = self._sync(self._objects.is_object, path)
        return found

    def _probe_children(self, op: str, prefix: str) -> bool:
        found: bool = self._sync(self._objects.any_under, prefix)
        return found

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_gcs_error(exc, op, path)


async def _aclose(pages: AsyncGenerator[list[Object]]) -> None:
    await pages.aclose()
