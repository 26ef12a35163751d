"""The s3 service with its hot operations on the lean request path.

:class:`LeanS3Storage` is :class:`S3Storage` whose GET, PUT, HEAD, DELETE,
ListObjectsV2 and multipart requests go through :class:`LeanClient` (botocore's
signer and credentials over kept-alive ``http.client`` connections) instead of s3fs.
Everything else (copy, presign) stays on s3fs. The service's own logic (directory
markers, stat of a prefix, conditional writes) runs unchanged on top, and errors go
through the same ``_errors.map_error``, so both paths give the same storager errors.

Throughput helpers run on one executor owned by the store, ``max_connections``
threads at most, started lazily, shut down with the store and recreated after a fork:
no call starts a thread of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

from storager._errors import (
    InvalidArgumentError,
    ObjectModeInvalidError,
    PreconditionFailedError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import iter_chunks, source_error
from storager.services.s3 import S3Storage
from storager.services.s3._errors import client_error_code, find_client_error
from storager.services.s3._fields import EMPTY_MAP, attributes, parse_credential, unquote_etag
from storager.services.s3._lean_client import LeanClient
from storager.services.s3._lean_upload import Prefetcher, upload_stream
from storager.services.s3._reader import READ_BUFFER
from storager.services.s3._upload import PART_MAX

__all__ = ["LeanS3Storage"]

#: Default for the connections kept alive and the parallel requests of one helper.
MAX_CONNECTIONS = 16
#: Parts uploading at once while the next fills: memory is (this + 1) x 5 MiB.
PARTS_IN_FLIGHT = 4
#: Ranged GETs a reader keeps in flight ahead of itself, of READ_BLOCK bytes each.
READ_AHEAD = 6
READ_BLOCK = 4 << 20
#: A whole-object read larger than this is fetched as parallel ranges.
PARALLEL_READ_MIN = 2 * READ_BUFFER


class LeanS3Storage(S3Storage):
    """:class:`S3Storage` on the lean request path; same pairs, same behaviour."""

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        location: str | None,
        force_path_style: bool | None,
        **rest: Any,
    ) -> None:
        super()._open(
            name=name,
            endpoint=endpoint,
            credential=credential,
            location=location,
            force_path_style=force_path_style,
            **rest,
        )
        # The max_connections pair, once the service has it; the default otherwise.
        self.max_connections: int = getattr(self, "_max_connections", MAX_CONNECTIONS)
        self._lean = LeanClient(
            name,
            endpoint=endpoint,
            region=location,
            credentials=parse_credential(credential) if credential is not None else None,
            force_path_style=force_path_style,
            max_connections=self.max_connections,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._executor_lock = threading.Lock()

    def _close(self) -> None:
        self._lean.close()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._executor_pid == os.getpid():
            executor.shutdown(wait=True, cancel_futures=True)
        super()._close()

    def _pool(self) -> ThreadPoolExecutor:
        """The store's executor; a forked child gets its own."""
        executor = self._executor
        if executor is not None and self._executor_pid == os.getpid():
            return executor
        with self._executor_lock:
            if self._executor is None or self._executor_pid != os.getpid():
                self._executor = ThreadPoolExecutor(
                    self.max_connections, thread_name_prefix="storager-s3"
                )
                self._executor_pid = os.getpid()
            return self._executor

    # -- requests: the lean client for what it implements, s3fs for the rest ------------

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        if method in LeanClient.METHODS:
            return self._lean.dispatch(method)(**kwargs)
        return super()._call(method, **kwargs)

    def _get(
        self, key: str, byte_range: str | None, if_match: str | None = None
    ) -> bytes | bytearray:
        # Only the body: parsing the answer's headers into botocore's shape costs ~15 us.
        headers = {}
        if byte_range is not None:
            headers["range"] = byte_range
        if if_match is not None:
            headers["if-match"] = if_match
        return self._lean.call("GET", key, headers=headers).body

    # -- Storager ---------------------------------------------------------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        if path.endswith("/"):
            raise ObjectModeInvalidError("read", "s3", path, "is a directory")
        key = self._key(path)
        start = offset or 0
        data: bytes | bytearray
        if size == 0:
            self._head("read", path)
            data = b""
        elif offset is None and size is None:
            data = self._read_whole(key)
        else:
            end = "" if size is None else str(start + size - 1)
            try:
                data = self._get(key, f"bytes={start}-{end}")
            except Exception as exc:
                error = find_client_error(exc)
                if error is None or client_error_code(error)[1] != 416:
                    raise
                data = b""  # the range starts at or past the end: S3 answers 416
        if io_callback is not None and data:
            io_callback(len(data))
        # A large body arrives as the bytearray it was read into; callers get bytes.
        return data if isinstance(data, bytes) else bytes(data)

    def _read_whole(self, key: str) -> bytes | bytearray:
        """GET an object; a large one as parallel ranges pinned to its ETag."""
        try:
            first = self._lean.get_object(key, Range=f"bytes=0-{PARALLEL_READ_MIN - 1}")
        except Exception as exc:
            error = find_client_error(exc)
            if error is None or client_error_code(error)[1] != 416:
                raise
            return self._get(key, None)  # an empty object: no byte 0 to range over
        body: bytes | bytearray = first["Body"]
        total = _total_length(first.get("ContentRange"), len(body))
        if total <= len(body):
            return body
        out = bytearray(total)
        out[: len(body)] = body
        etag = first.get("ETag")

        def fetch(at: int) -> None:
            n = min(READ_BUFFER, total - at)
            chunk = self._get(key, f"bytes={at}-{at + n - 1}", etag)
            out[at : at + len(chunk)] = chunk

        for future in [
            self._pool().submit(fetch, at) for at in range(len(body), total, READ_BUFFER)
        ]:
            future.result()
        return out

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        """List as the s3fs path does, fetching each next page while this one is yielded."""
        recursive = list_mode == "prefix"
        prefix = path if recursive or path.endswith("/") else path + "/"
        kwargs: dict[str, Any] = {"Prefix": self._key(prefix)}
        if not recursive:
            kwargs["Delimiter"] = "/"
        seen_dirs: set[str] = set()
        # Read-only and equal for every entry of one class: one mapping per class.
        systems: dict[str | None, Mapping[str, object]] = {}
        quick, rel, read = Object._quick, self._rel, ObjectMode.READ
        pool = self._pool()
        future: Future[dict[str, Any]] = pool.submit(self._lean.list_objects_v2, **kwargs)
        try:
            while True:
                page = future.result()
                token = page.get("NextContinuationToken")
                more = bool(page.get("IsTruncated") and token)
                if more:
                    future = pool.submit(
                        self._lean.list_objects_v2, **kwargs, ContinuationToken=token
                    )
                for item in page["Contents"]:
                    key = "/" + item["Key"]
                    if key == prefix and not recursive:
                        continue  # the directory's own marker
                    if key.endswith("/"):
                        yield self._object(key, item, length_key="Size")
                        continue
                    # What _object builds from a listed entry, without its generic
                    # lookups, and through Object._quick: the dataclass __init__ alone
                    # would cost ~2.2 ms of a 1,000-key page.
                    storage_class = item.get("StorageClass")
                    system = systems.get(storage_class)
                    if system is None:
                        system = systems[storage_class] = (
                            MappingProxyType({"storage_class": storage_class})
                            if storage_class
                            else EMPTY_MAP
                        )
                    etag = item["ETag"]
                    yield quick(
                        rel(key),
                        read,
                        item["Size"],
                        item["LastModified"],
                        etag.strip('"') if etag is not None else None,
                        system,
                    )
                for common in page["CommonPrefixes"]:
                    dir_path = "/" + common["Prefix"]
                    if dir_path not in seen_dirs:
                        seen_dirs.add(dir_path)
                        yield Object(self._rel(dir_path), ObjectMode.DIR)
                if not more:
                    return
        finally:
            future.cancel()  # a caller that stopped early: drop the page in flight

    def _range_fetcher(
        self, key: str, etag: str | None, start: int, span: int
    ) -> Callable[[int, int], bytes]:
        """Serve the reader from ranged GETs started ahead of it, pinned to ``etag``."""
        return Prefetcher(
            lambda at, n: self._get(key, f"bytes={at}-{at + n - 1}", etag),
            self._pool(),
            start=start,
            length=span,
            depth=READ_AHEAD,
            block=READ_BLOCK,
        )

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
        pairs: dict[str, Any] = {
            "content_md5": content_md5,
            "content_type": content_type,
            "if_match": if_match,
            "if_none_match": if_none_match,
            "io_callback": io_callback,
            "server_side_encryption": server_side_encryption,
            "size": size,
            "storage_class": storage_class,
            "user_metadata": user_metadata,
        }
        if isinstance(data, bytes | bytearray | memoryview) and len(data) <= PART_MAX:
            # One PUT: the service's own path, whose requests come to _call.
            return super()._write(path, data, **pairs)
        key = self._key(path)
        attrs = attributes(content_type, storage_class, server_side_encryption, user_metadata)
        conditions: dict[str, Any] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        if if_none_match is not None:
            conditions["IfNoneMatch"] = if_none_match
        lean = self._lean

        def put(body: bytes) -> dict[str, Any]:
            extra = dict(attrs, **conditions)
            if content_md5 is not None:
                extra["ContentMD5"] = content_md5
            return lean.put_object(key, body, **extra)

        try:
            chunks = iter_chunks("write", "s3", path, data, size=size, io_callback=io_callback)
            response, length = upload_stream(
                "write",
                path,
                chunks,
                put=put,
                create=lambda: str(lean.create_multipart_upload(key, **attrs)["UploadId"]),
                upload_part=lambda upload_id, number, body: lean.upload_part(
                    key, upload_id, number, body
                ),
                complete=lambda upload_id, parts: lean.complete_multipart_upload(
                    key, upload_id, {"Parts": parts}, **conditions
                ),
                abort=lambda upload_id: self._abort(key, upload_id),
                executor=self._pool(),
                in_flight=PARTS_IN_FLIGHT,
                size=size,
                content_md5=content_md5,
            )
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
            content_length=length,
            content_type=content_type,
            content_md5=content_md5,
            etag=unquote_etag(response.get("ETag")),
            user_metadata=MappingProxyType(dict(user_metadata)) if user_metadata else EMPTY_MAP,
        )

    # -- throughput helpers -------------------------------------------------------------------

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> list[Object]:
        """Write many small objects, ``max_connections`` at a time; return them in order.

        Raises:
            StorageError: the first write that failed (the others still ran).
        """
        futures = [self._pool().submit(self.write, path, data) for path, data in items]
        return [future.result() for future in futures]

    def read_many(self, paths: Iterable[str]) -> list[bytes]:
        """Read many objects, ``max_connections`` at a time; return them in order."""
        futures = [self._pool().submit(self.read, path) for path in paths]
        return [future.result() for future in futures]

    def delete_prefix(self, path: str) -> int:
        """Delete every object under the directory ``path``, 1,000 keys a request.

        Returns:
            How many keys were deleted.
        """
        prefix = self._abs_dir("delete", path)
        count = 0
        try:
            batch: list[str] = []
            futures = []
            for obj in self.list(self._rel(prefix), list_mode="prefix"):
                batch.append(self._key(self._abs_path("delete", obj.path)))
                if obj.is_dir and not batch[-1].endswith("/"):
                    batch[-1] += "/"
                if len(batch) == 1000:
                    futures.append(self._pool().submit(self._lean.delete_objects, batch))
                    count, batch = count + len(batch), []
            if batch:
                futures.append(self._pool().submit(self._lean.delete_objects, batch))
                count += len(batch)
            for future in futures:
                failed = future.result()
                if failed:
                    key, code = failed[0]
                    raise InvalidArgumentError(
                        "delete", "s3", "/" + key, f"{len(failed)} keys not deleted ({code})"
                    )
        except StorageError:
            raise
        except Exception as exc:
            raise self._map_error(exc, "delete", prefix) from exc
        return count


def _total_length(content_range: str | None, fallback: int) -> int:
    """Return the object's length from ``bytes a-b/total``."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return fallback
