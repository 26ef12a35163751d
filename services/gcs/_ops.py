"""The gcs operations, written once as coroutines on one gcsfs client.

The sync store runs them on fsspec's I/O loop thread; the native async store
(``_async``) runs them on the caller's loop, with a gcsfs client made for that loop.
Paths are store-absolute and pairs validated, as the ``_op`` methods get them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from gcsfs.core import GCSFileSystem, simple_upload
from gcsfs.retry import HttpError

from storager._errors import NotFoundError, ObjectModeInvalidError
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback
from storager.services.gcs._upload import Uploader

__all__ = ["Objects", "Pinned"]

_OBJECT = "b/{}/o/{}"
_OBJECTS = "b/{}/o"
_REWRITE = "b/{}/o/{}/rewriteTo/b/{}/o/{}"
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_DIR_CONTENT_TYPE = "application/x-directory"
_LIST_PAGE = 1000
_EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Pinned:
    """The range a reader covers, in one generation of an object.

    Every fetch asks for the generation read first, so an overwrite while reading
    raises instead of mixing two versions.
    """

    key: str
    start: int
    length: int
    generation: Any


def _file_key(op: str, path: str) -> str:
    if path.endswith("/"):
        raise ObjectModeInvalidError(op, "gcs", path, "is a directory")
    return path[1:]


class Objects:
    """The operations on one bucket through one gcsfs client; see the module docstring.

    Args:
        fs: The gcsfs client (bound to one event loop).
        bucket: The bucket.
        rel: Turns a store-absolute path into the path the caller sees.
        chunk_size: The size of a resumable upload's chunks.
    """

    def __init__(
        self, fs: GCSFileSystem, bucket: str, rel: Callable[[str], str], chunk_size: int
    ) -> None:
        self.fs = fs
        self._bucket = bucket
        self._rel = rel
        self._media = f"{fs._location}/download/storage/v1/b/{{}}/o/{{}}"
        self._uploader = Uploader(fs, chunk_size)

    async def _call(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        return await self.fs._call(method, path, *args, **kwargs)

    async def get(self, key: str) -> dict[str, Any]:
        """Return an object's resource; FileNotFoundError when missing."""
        result: dict[str, Any] = await self._call("GET", _OBJECT, self._bucket, key, json_out=True)
        return result

    def to_object(self, path: str, res: Mapping[str, Any]) -> Object:
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

    async def fetch(self, key: str, start: int, size: int | None, generation: Any = None) -> bytes:
        """GET ``size`` bytes from ``start`` (to the end when ``size`` is None)."""
        headers = None
        if start or size is not None:
            end = "" if size is None else str(start + size - 1)
            headers = {"Range": f"bytes={start}-{end}"}
        try:
            _, data = await self._call(
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

    async def read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        key = _file_key("read", path)
        if size == 0:
            await self.get(key)  # still a NotFoundError when missing
            data = b""
        else:
            data = await self.fetch(key, offset or 0, size)
        if io_callback is not None:
            io_callback(len(data))
        return data

    async def open_range(self, path: str, *, offset: int | None, size: int | None) -> Pinned:
        """Pin the object's generation and the range a reader covers."""
        key = _file_key("open_reader", path)
        res = await self.get(key)
        total = int(res.get("size", 0))
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        return Pinned(key, start, length, res.get("generation"))

    async def fetch_pinned(self, pinned: Pinned, pos: int, n: int) -> bytes:
        """Return ``n`` bytes at ``pos`` of a pinned range (any loop's client may ask)."""
        return await self.fetch(pinned.key, pinned.start + pos, n, pinned.generation)

    async def write(
        self,
        path: str,
        chunks: AsyncIterator[bytes | bytearray | memoryview],
        *,
        content_type: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        res = await self._uploader.upload(
            path,
            self._bucket,
            path[1:],
            chunks,
            content_type=content_type or _DEFAULT_CONTENT_TYPE,
            metadata=user_metadata,
        )
        return self.to_object(path, res)

    async def stat(self, path: str) -> Object:
        if not path.endswith("/"):
            try:
                return self.to_object(path, await self.get(path[1:]))
            except FileNotFoundError:
                pass
        # A directory: its marker object, or any key under it.
        dir_path = path if path.endswith("/") else path + "/"
        page = await self._call(
            "GET", _OBJECTS, self._bucket, json_out=True, prefix=dir_path[1:], maxResults=1
        )
        items = page.get("items") or []
        if items and items[0].get("name") == dir_path[1:]:
            return self.to_object(dir_path, items[0])
        if items or page.get("prefixes"):
            return Object(self._rel(dir_path), ObjectMode.DIR)
        raise NotFoundError("stat", "gcs", path)

    async def is_object(self, path: str) -> bool:
        """Return whether an object has the store-absolute path (one GET of its resource)."""
        try:
            await self.get(path[1:])
        except FileNotFoundError:
            return False
        return True

    async def any_under(self, prefix: str) -> bool:
        """Return whether any object's name starts with ``prefix`` (a one-item listing)."""
        page = await self._call(
            "GET", _OBJECTS, self._bucket, json_out=True, prefix=prefix[1:], maxResults=1
        )
        return bool(page.get("items") or page.get("prefixes"))

    async def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # already gone: delete is idempotent
            await self._call("DELETE", _OBJECT, self._bucket, path[1:])

    async def list_pages(self, path: str, *, list_mode: str | None) -> AsyncGenerator[list[Object]]:
        """Yield the listing a page at a time (one request each), sorted within a page."""
        prefix_mode = list_mode == "prefix"
        if not prefix_mode and not path.endswith("/"):
            path += "/"
        prefix = path[1:]
        token: str | None = None
        while True:
            page = await self._call(
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
                entries.append((name, self.to_object("/" + name, item)))
            for sub in page.get("prefixes") or []:
                entries.append((sub, Object(self._rel("/" + sub), ObjectMode.DIR)))
            entries.sort(key=lambda entry: entry[0])
            yield [obj for _, obj in entries]
            token = page.get("nextPageToken")
            if not token:
                return

    # -- Copier, Mover, Direr -----------------------------------------------------------

    async def rewrite(self, op: str, src: str, dst: str) -> None:
        args = (self._bucket, src[1:], self._bucket, dst[1:])
        try:
            out = await self._call("POST", _REWRITE, *args, json_out=True)
            # Large or cross-location copies take several calls.
            while out.get("done") is not True:
                out = await self._call(
                    "POST", _REWRITE, *args, json_out=True, rewriteToken=out["rewriteToken"]
                )
        except FileNotFoundError:
            raise NotFoundError(op, "gcs", src) from None

    async def move(self, src: str, dst: str) -> None:
        # Copy then delete: gcsfs's move tries the moveTo API first, which emulators
        # answer 501 and gcsfs retries for half a minute.
        if src == dst:
            await self.get(src[1:])  # moving onto itself: only check it exists
            return
        await self.rewrite("move", src, dst)
        await self.delete(src)

    async def create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        res = await simple_upload(
            self.fs, self._bucket, dir_path[1:], b"", None, None, _DIR_CONTENT_TYPE
        )
        return self.to_object(dir_path, res)


def _timestamp(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
