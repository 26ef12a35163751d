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

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, BinaryIO

from fsspec.asyn import sync
from gcsfs.core import GCSFileSystem, simple_upload
from gcsfs.retry import HttpError

from storager._endpoints import check_endpoint
from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import RangeReader, iter_chunks
from storager.services.gcs._auth import token_for
from storager.services.gcs._errors import map_gcs_error
from storager.services.gcs._generated import GcsGenerated
from storager.services.gcs._upload import CHUNK_ALIGN, DEFAULT_CHUNK_SIZE, Uploader

__all__ = ["GcsStorage"]

logger = logging.getLogger("storager.services.gcs")

_OBJECT = "b/{}/o/{}"
_OBJECTS = "b/{}/o"
_REWRITE = "b/{}/o/{}/rewriteTo/b/{}/o/{}"
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_DIR_CONTENT_TYPE = "application/x-directory"
_LIST_PAGE = 1000
#: Bytes per ranged request of a reader (its buffer size).
_READ_BUFFER = 4 * 1024 * 1024
_EMPTY_MAP: Mapping[str, str] = MappingProxyType({})
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
        self._media = f"{self._fs._location}/download/storage/v1/b/{{}}/o/{{}}"
        self._uploader = Uploader(self._fs, self._sync, self._chunk_size)

    def _close(self) -> None:
        session = self._fs._session
        if session is not None:
            self._fs._session = None
            # On fsspec's loop thread: aiohttp sessions are not thread-safe.
            with contextlib.suppress(Exception):
                sync(self._fs.loop, session.close, timeout=_CLOSE_TIMEOUT)

    def _sync(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a gcsfs coroutine function on fsspec's I/O loop and return its result."""
        return sync(self._fs.loop, func, *args, **kwargs)

    def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        return self._sync(self._fs._call, method, path, *args, **kwargs)

    def _get(self, key: str) -> dict[str, Any]:
        """Return an object's resource; FileNotFoundError when missing."""
        result: dict[str, Any] = self._call("GET", _OBJECT, self._bucket, key, json_out=True)
        return result

    def _to_object(self, path: str, res: Mapping[str, Any]) -> Object:
        """Build an Object from a GCS object resource; ``path`` is store-absolute."""
        is_dir = path.endswith("/")
        metadata = res.get("metadata")
        system: dict[str, object] = {}
        for field, name in (
            ("generation", "generation"),
            ("storageClass", "storage_class"),
            ("crc32c", "crc32c"),
        ):
            if res.get(field) is not None:
                system[name] = res[field]
        return Object(
            self._rel(path),
            ObjectMode.DIR if is_dir else ObjectMode.READ,
            content_length=None if is_dir else int(res.get("size", 0)),
            content_type=res.get("contentType"),
            content_md5=res.get("md5Hash"),
            etag=res.get("etag"),
            last_modified=_timestamp(res.get("updated")),
            user_metadata=MappingProxyType({str(k): str(v) for k, v in metadata.items()})
            if metadata
            else _EMPTY_MAP,
            system_metadata=MappingProxyType(system),
        )

    # -- Storager -----------------------------------------------------------------------

    def _fetch(self, key: str, start: int, size: int | None, generation: Any = None) -> bytes:
        """GET ``size`` bytes from ``start`` (to the end when ``size`` is None)."""
        headers = None
        if start or size is not None:
            end = "" if size is None else str(start + size - 1)
            headers = {"Range": f"bytes={start}-{end}"}
        try:
            _, data = self._call(
                "GET",
                self._media,
                self._bucket,
                key,
                alt="media",
                headers=headers,
                generation=generation,
            )
        except HttpError as exc:
            if exc.code == 416:  # the range starts at or past the end
                return b""
            raise
        return bytes(data)

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        if path.endswith("/"):
            raise ObjectModeInvalidError("read", "gcs", path, "is a directory")
        key = path[1:]
        if size == 0:
            self._get(key)  # still a NotFoundError when missing
            data = b""
        else:
            data = self._fetch(key, offset or 0, size)
        if io_callback is not None:
            io_callback(len(data))
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        if path.endswith("/"):
            raise ObjectModeInvalidError("open_reader", "gcs", path, "is a directory")
        key = path[1:]
        res = self._get(key)
        total = int(res.get("size", 0))
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        # Pin the generation read first, so an overwrite while reading raises instead
        # of mixing two versions.
        generation = res.get("generation")

        def fetch(pos: int, n: int) -> bytes:
            try:
                return self._fetch(key, start + pos, n, generation)
            except StorageError:
                raise
            except Exception as exc:
                raise map_gcs_error(exc, "open_reader", path) from exc

        return io.BufferedReader(RangeReader(fetch, length), buffer_size=_READ_BUFFER)

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
        chunks = iter_chunks(
            "write",
            "gcs",
            path,
            data,
            size=size,
            io_callback=io_callback,
            chunk_size=min(self._chunk_size, 1 << 20),
        )
        res = self._uploader.upload(
            path,
            self._bucket,
            path[1:],
            chunks,
            content_type=content_type or _DEFAULT_CONTENT_TYPE,
            metadata=user_metadata,
        )
        return self._to_object(path, res)

    def _stat(self, path: str) -> Object:
        if not path.endswith("/"):
            try:
                return self._to_object(path, self._get(path[1:]))
            except FileNotFoundError:
                pass
        # A directory: its marker object, or any key under it.
        dir_path = path if path.endswith("/") else path + "/"
        page = self._call(
            "GET", _OBJECTS, self._bucket, json_out=True, prefix=dir_path[1:], maxResults=1
        )
        items = page.get("items") or []
        if items and items[0].get("name") == dir_path[1:]:
            return self._to_object(dir_path, items[0])
        if items or page.get("prefixes"):
            return Object(self._rel(dir_path), ObjectMode.DIR)
        raise NotFoundError("stat", "gcs", path)

    def _delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # already gone: delete is idempotent
            self._call("DELETE", _OBJECT, self._bucket, path[1:])

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        prefix_mode = list_mode == "prefix"
        if not prefix_mode and not path.endswith("/"):
            path += "/"
        prefix = path[1:]
        token: str | None = None
        while True:
            page = self._call(
                "GET",
                _OBJECTS,
                self._bucket,
                json_out=True,
                prefix=prefix or None,
                delimiter=None if prefix_mode else "/",
                maxResults=_LIST_PAGE,
                pageToken=token,
            )
            entries: list[tuple[str, Object]] = []
            for item in page.get("items") or []:
                name = item["name"]
                if not prefix_mode and name == prefix:
                    continue  # the directory's own marker
                entries.append((name, self._to_object("/" + name, item)))
            for sub in page.get("prefixes") or []:
                entries.append((sub, Object(self._rel("/" + sub), ObjectMode.DIR)))
            entries.sort(key=lambda entry: entry[0])
            for _, obj in entries:
                yield obj
            token = page.get("nextPageToken")
            if not token:
                return

    # -- Copier, Mover, Direr -----------------------------------------------------------

    def _rewrite(self, op: str, src: str, dst: str) -> None:
        if src.endswith("/"):
            raise ObjectModeInvalidError(op, "gcs", src, "is a directory")
        args = (self._bucket, src[1:], self._bucket, dst[1:])
        try:
            out = self._call("POST", _REWRITE, *args, json_out=True)
            # Large or cross-location copies take several calls.
            while out.get("done") is not True:
                out = self._call(
                    "POST", _REWRITE, *args, json_out=True, rewriteToken=out["rewriteToken"]
                )
        except FileNotFoundError:
            raise NotFoundError(op, "gcs", src) from None

    def _copy(self, src: str, dst: str) -> None:
        self._rewrite("copy", src, dst)

    def _move(self, src: str, dst: str) -> None:
        # Copy then delete: gcsfs's move tries the moveTo API first, which emulators
        # answer 501 and gcsfs retries for half a minute.
        if src == dst:
            if src.endswith("/"):
                raise ObjectModeInvalidError("move", "gcs", src, "is a directory")
            self._get(src[1:])  # moving onto itself: only check it exists
            return
        self._rewrite("move", src, dst)
        self._delete(src)

    def _create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        res = self._sync(
            simple_upload, self._fs, self._bucket, dir_path[1:], b"", None, None, _DIR_CONTENT_TYPE
        )
        return self._to_object(dir_path, res)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_gcs_error(exc, op, path)


def _timestamp(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
