"""The s3 service: Amazon S3 and S3-compatible stores, built on s3fs.

Requests go through s3fs's ``S3FileSystem`` (its aiobotocore client, its retries, its
event loop). Paths map to keys by dropping the leading ``/``; a key ending in ``/`` is
a directory marker. Writes of small or in-memory data are one PUT; streams are
uploaded in parts, so memory stays bounded. Readers fetch ranges on demand.

Example:
    >>> store = storager.open("s3://bucket/dir/?endpoint=http://127.0.0.1:9000")
    >>> store.write("a.txt", b"hi").content_length
    2
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from datetime import datetime
from types import MappingProxyType
from typing import Any, BinaryIO, TypeVar

import s3fs
from aiobotocore.session import AioSession
from botocore.loaders import Loader, create_loader
from fsspec.asyn import sync

from storager._endpoints import check_endpoint
from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    PathInvalidError,
    PreconditionFailedError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import iter_chunks, source_error
from storager.services.s3._errors import client_error_code, find_client_error, map_error
from storager.services.s3._fields import (
    EMPTY_MAP,
    attributes,
    parse_credential,
    unquote_etag,
)
from storager.services.s3._generated import S3Generated
from storager.services.s3._multipart import S3Multipart
from storager.services.s3._reader import open_ranged
from storager.services.s3._upload import PART_MAX, Result, Upload, stream

__all__ = ["S3Storage"]

T = TypeVar("T")

#: Longest validity SigV4 allows a presigned URL.
_PRESIGN_MAX = 7 * 24 * 3600
#: Largest object one CopyObject may copy; larger ones copy part by part.
_COPY_MAX = 5 << 30


@functools.cache
def _shared_loader() -> Loader:
    return create_loader()


def _md5_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class S3Storage(S3Multipart, S3Generated):
    """A bucket (and a working directory in it) on S3 or an S3-compatible server.

    Example:
        >>> store = S3Storage(name="bucket", endpoint="http://127.0.0.1:9000")
        >>> store.write("a.txt", b"hi").etag
        '49f68a5c8493ec2c0bf489821c21fc3b'
    """

    def __new__(cls, *args: Any, **pairs: Any) -> S3Storage:
        # The lean request path is a subclass, chosen here so that storager.open and
        # direct construction both get it; request_path="s3fs" keeps s3fs for everything.
        target: type[S3Storage] = cls
        if cls is S3Storage and pairs.get("request_path") != "s3fs":
            from storager.services.s3._lean_storage import LeanS3Storage

            target = LeanS3Storage
        return super().__new__(target)

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        location: str | None,
        force_path_style: bool | None,
        max_connections: int | None = None,
        request_path: str | None = None,
    ) -> None:
        if request_path not in (None, "lean", "s3fs"):
            raise PairInvalidError("new", "s3", "", "pair 'request_path' must be 'lean' or 's3fs'")
        if max_connections is not None and max_connections < 1:
            raise PairInvalidError("new", "s3", "", "pair 'max_connections' must be at least 1")
        self._max_connections = max_connections or 16
        if endpoint is not None:
            check_endpoint("s3", endpoint)
        if not name or "/" in name:
            raise PairInvalidError("new", "s3", "", "pair 'name' must be a bucket name")
        self._name = name
        self._bucket = name
        key = secret = None
        if credential is not None:
            key, secret = parse_credential(credential)
        client_kwargs: dict[str, Any] = {}
        if location:
            client_kwargs["region_name"] = location
        # Checksums only when S3 requires them: emulators differ in what they accept, and
        # a presigned PUT must not demand a checksum a plain HTTP client cannot send.
        config_kwargs: dict[str, Any] = {
            # SigV4 everywhere, presigned URLs included (botocore may presign with SigV2).
            "signature_version": "s3v4",
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        if force_path_style is not None:
            config_kwargs["s3"] = {"addressing_style": "path" if force_path_style else "virtual"}
        session = AioSession()
        # One model loader for every store: parsing S3's API model costs ~10 MiB and
        # tens of milliseconds per client otherwise. Credentials stay per session.
        session.register_component("data_loader", _shared_loader())
        self._fs = s3fs.S3FileSystem(
            session=session,
            key=key,
            secret=secret,
            endpoint_url=endpoint,
            client_kwargs=client_kwargs,
            config_kwargs=config_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
            asynchronous=False,
        )

    def _close(self) -> None:
        client = getattr(self._fs, "_s3", None)
        if client is not None:
            s3fs.S3FileSystem.close_session(self._fs.loop, client)
            self._fs._s3 = None

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_error(exc, op, path, self._bucket)

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on s3fs's event loop and wait for it."""

        async def wrapped() -> T:
            return await coro

        result: T = sync(self._fs.loop, wrapped)
        return result

    def _submit(self, coro: Awaitable[T]) -> Future[T]:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._fs.loop)

    async def _acall(self, method: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = await self._fs._call_s3(method, Bucket=self._bucket, **kwargs)
        return response

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._run(self._acall(method, **kwargs))

    @staticmethod
    def _key(path: str) -> str:
        return path[1:]

    async def _aget(self, key: str, byte_range: str | None, if_match: str | None = None) -> bytes:
        kwargs: dict[str, Any] = {}
        if byte_range is not None:
            kwargs["Range"] = byte_range
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        response = await self._acall("get_object", Key=key, **kwargs)
        body = response["Body"]
        try:
            data: bytes = await body.read()
        finally:
            body.close()
        return data

    def _object(self, path: str, head: Mapping[str, Any], *, length_key: str) -> Object:
        modified = head.get("LastModified")
        system: dict[str, object] = {}
        for field, name in (
            ("StorageClass", "storage_class"),
            ("ServerSideEncryption", "server_side_encryption"),
            ("VersionId", "version_id"),
        ):
            if head.get(field):
                system[name] = head[field]
        meta = head.get("Metadata")
        is_dir = path.endswith("/")
        return Object(
            self._rel(path),
            ObjectMode.DIR if is_dir else ObjectMode.READ,
            content_length=None if is_dir else head.get(length_key),
            content_type=head.get("ContentType"),
            etag=unquote_etag(head.get("ETag")),
            last_modified=modified if isinstance(modified, datetime) else None,
            user_metadata=MappingProxyType(dict(meta)) if meta else EMPTY_MAP,
            system_metadata=MappingProxyType(system) if system else EMPTY_MAP,
        )

    def _has_children(self, prefix: str) -> bool:
        response = self._call("list_objects_v2", Prefix=self._key(prefix), MaxKeys=1)
        return bool(response.get("KeyCount") or response.get("Contents"))

    def _head(self, op: str, path: str) -> dict[str, Any]:
        """HEAD an object; a missing key that is a directory prefix raises ObjectModeInvalid."""
        if path.endswith("/"):
            raise ObjectModeInvalidError(op, "s3", path, "is a directory")
        try:
            return self._call("head_object", Key=self._key(path))
        except Exception as exc:
            error = self._map_error(exc, op, path)
            if (
                isinstance(error, NotFoundError)
                and "NoSuchBucket" not in error.reason
                and self._has_children(path + "/")
            ):
                raise ObjectModeInvalidError(op, "s3", path, "is a directory") from exc
            raise error from exc

    # -- Storager ---------------------------------------------------------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        if path.endswith("/"):
            raise ObjectModeInvalidError("read", "s3", path, "is a directory")
        key = self._key(path)
        start = offset or 0
        if size == 0:
            self._head("read", path)
            data = b""
        elif offset is None and size is None:
            data = self._run(self._aget(key, None))
        else:
            end = "" if size is None else str(start + size - 1)
            try:
                data = self._run(self._aget(key, f"bytes={start}-{end}"))
            except Exception as exc:
                error = find_client_error(exc)
                if error is None or client_error_code(error)[1] != 416:
                    raise
                data = b""  # the range starts at or past the end: S3 answers 416
        if io_callback is not None and data:
            io_callback(len(data))
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        head = self._head("open_reader", path)
        length = int(head.get("ContentLength") or 0)
        start = min(offset or 0, length)
        span = length - start if size is None else min(size, length - start)
        fetch = self._range_fetcher(self._key(path), head.get("ETag"), start, span)
        return open_ranged(
            fetch, start, span, lambda exc: self._map_error(exc, "open_reader", path)
        )

    def _range_fetcher(
        self, key: str, etag: str | None, start: int, span: int
    ) -> Callable[[int, int], bytes]:
        """Return the ``fetch(offset, size)`` a reader over ``span`` bytes from ``start`` uses.

        Every range is pinned to ``etag``: a reader never mixes two versions of the object.
        """

        def fetch(at: int, n: int) -> bytes:
            return self._run(self._aget(key, f"bytes={at}-{at + n - 1}", etag))

        return fetch

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        content_md5: str | None,
        content_type: str | None,
        if_match: str | None,
        if_none_match: str | None,
        io_callback: IoCallback | None,
        server_side_encryption: str | None,
        size: int | None,
        storage_class: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        key = self._key(path)
        attrs = attributes(content_type, storage_class, server_side_encryption, user_metadata)
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_none_match is not None:
            conditions["IfNoneMatch"] = if_none_match

        def put(body: bytes) -> dict[str, Any]:
            extra = dict(attrs)
            if content_md5 is not None:
                extra["ContentMD5"] = content_md5
            return self._call("put_object", Key=key, Body=body, **extra, **conditions)

        upload = Upload(
            put=put,
            create=lambda: str(self._call("create_multipart_upload", Key=key, **attrs)["UploadId"]),
            upload_part=lambda upload_id, number, body: self._acall(
                "upload_part", Key=key, UploadId=upload_id, PartNumber=number, Body=body
            ),
            complete=lambda upload_id, parts: self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **conditions,
            ),
            abort=lambda upload_id: self._abort(key, upload_id),
            submit=self._submit,
        )
        try:
            if isinstance(data, bytes | bytearray | memoryview) and len(data) <= PART_MAX:
                # Already in memory and small enough for one PUT: no buffering, no copy.
                body = data if isinstance(data, bytes) else bytes(data)
                if size is not None and size != len(body):
                    raise InvalidArgumentError(
                        "write",
                        "s3",
                        path,
                        f"data has {len(body)} bytes, not size={size}; nothing was written",
                    )
                if content_md5 is not None and content_md5 != _md5_base64(body):
                    # Checked here too: not every S3-compatible server checks Content-MD5.
                    raise InvalidArgumentError(
                        "write", "s3", path, "content_md5 does not match the data"
                    )
                result = Result(put(body), len(body), 0)
                if io_callback is not None and body:
                    io_callback(len(body))
            else:
                chunks = iter_chunks("write", "s3", path, data, size=size, io_callback=io_callback)
                result = stream("write", path, chunks, upload, size=size, content_md5=content_md5)
        except PreconditionFailedError as exc:
            raise self._condition_failed(exc, path, if_match, if_none_match) from exc.__cause__
        except StorageError:
            raise
        except Exception as exc:
            own = source_error(exc)  # the caller's data source failed: give its error back
            if own is not None:
                raise own from None
            error = self._map_error(exc, "write", path)
            if isinstance(error, PreconditionFailedError):
                raise self._condition_failed(error, path, if_match, if_none_match) from exc
            raise error from exc
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=result.length,
            content_type=content_type,
            content_md5=content_md5,
            etag=unquote_etag(result.response.get("ETag")),
            user_metadata=MappingProxyType(dict(user_metadata)) if user_metadata else EMPTY_MAP,
        )

    @staticmethod
    def _condition_failed(
        error: PreconditionFailedError,
        path: str,
        if_match: str | None,
        if_none_match: str | None,
    ) -> StorageError:
        # A failed If-None-Match means the object exists: the builtin FileExistsError.
        if if_none_match is not None and if_match is None:
            return AlreadyExistsError("write", "s3", path, "object exists (if_none_match)")
        return error

    def _stat(self, path: str) -> Object:
        if path.endswith("/"):
            return self._stat_dir(path)
        try:
            head = self._call("head_object", Key=self._key(path))
        except Exception as exc:
            error = self._map_error(exc, "stat", path)
            if isinstance(error, NotFoundError) and "NoSuchBucket" not in error.reason:
                try:
                    return self._stat_dir(path + "/")
                except NotFoundError as dir_error:
                    # HEAD cannot say why (no body); the listing names a missing bucket.
                    if "NoSuchBucket" in dir_error.reason:
                        raise NotFoundError("stat", "s3", path, dir_error.reason) from exc
            raise error from exc
        return self._object(path, head, length_key="ContentLength")

    def _stat_dir(self, path: str) -> Object:
        try:
            head = self._call("head_object", Key=self._key(path))
        except Exception as exc:
            if not isinstance(self._map_error(exc, "stat", path), NotFoundError):
                raise
        else:
            return self._object(path, head, length_key="ContentLength")
        if self._has_children(path):
            return Object(self._rel(path), ObjectMode.DIR)
        raise NotFoundError("stat", "s3", path)

    def _delete(self, path: str) -> None:
        # DeleteObject answers 204 for a missing key: idempotent by nature.
        self._call("delete_object", Key=self._key(path))

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        recursive = list_mode == "prefix"
        prefix = path if recursive or path.endswith("/") else path + "/"
        kwargs: dict[str, Any] = {"Prefix": self._key(prefix)}
        if not recursive:
            kwargs["Delimiter"] = "/"
        seen_dirs: set[str] = set()
        token: str | None = None
        while True:
            page = self._call(
                "list_objects_v2", **kwargs, **({"ContinuationToken": token} if token else {})
            )
            for item in page.get("Contents") or ():
                key = "/" + item["Key"]
                if key == prefix and not recursive:
                    continue  # the directory's own marker
                yield self._object(key, item, length_key="Size")
            for common in page.get("CommonPrefixes") or ():
                dir_path = "/" + common["Prefix"]
                if dir_path not in seen_dirs:
                    seen_dirs.add(dir_path)
                    yield Object(self._rel(dir_path), ObjectMode.DIR)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    # -- Copier, Mover ----------------------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        head = self._head("copy", src)
        source = {"Bucket": self._bucket, "Key": self._key(src)}
        length = int(head.get("ContentLength") or 0)
        if length <= _COPY_MAX:
            self._call("copy_object", Key=self._key(dst), CopySource=source)
            return
        self._copy_parts(source, dst, length, head)

    def _move(self, src: str, dst: str) -> None:
        if src.endswith("/"):
            raise PathInvalidError("move", "s3", src, "move takes object paths, not directories")
        if src == dst:
            self._head("move", src)
            return
        self._copy(src, dst)
        self._call("delete_object", Key=self._key(src))

    # -- Direr ------------------------------------------------------------------------------

    def _create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        response = self._call("put_object", Key=self._key(dir_path), Body=b"")
        return Object(self._rel(dir_path), ObjectMode.DIR, etag=unquote_etag(response.get("ETag")))

    # -- Presigner --------------------------------------------------------------------------

    def _presign(self, op: str, method: str, path: str, expire: int | None) -> str:
        if path.endswith("/"):
            raise PathInvalidError(op, "s3", path, "a directory has no URL")
        seconds = 3600 if expire is None else expire
        if not 1 <= seconds <= _PRESIGN_MAX:
            raise InvalidArgumentError(op, "s3", path, "expire must be 1 s to 7 days")

        async def sign() -> str:
            await self._fs.set_session()
            client = await self._fs.get_s3(self._bucket)
            url: str = await client.generate_presigned_url(
                ClientMethod=method,
                Params={"Bucket": self._bucket, "Key": self._key(path)},
                ExpiresIn=seconds,
            )
            return url

        return self._run(sign())

    def _presign_read(self, path: str, *, expire: int | None) -> str:
        return self._presign("presign_read", "get_object", path, expire)

    def _presign_write(self, path: str, *, expire: int | None) -> str:
        return self._presign("presign_write", "put_object", path, expire)
