"""The s3 service: Amazon S3 and S3-compatible stores (SeaweedFS, MinIO, moto...).

A ``write`` from ``storager.open("s3://bucket/dir/?endpoint=...")`` to the socket,
top-down:

1. ``S3Generated.write`` (generated): checks the pairs (header-bound ones refuse control
   characters), applies default pairs, resolves the path;
2. :meth:`S3Storage._write` (here): turns the pairs into headers once
   (``_headers.object_headers``), sends bytes in memory as one PUT, and streams
   anything else through ``_upload.upload``;
3. a :class:`~storager.services.s3._transport.Transport` sends each request:
   ``_http_transport.HttpTransport`` by default (signed by ``storager._sigv4``, sent by
   ``_connections.ConnectionPool``), or ``_s3fs_transport.S3fsTransport`` with
   ``request_path=s3fs``. Both retry through ``_retries`` and raise storager errors
   (``_errors``).

Paths map to keys by dropping the leading ``/``; a key ending in ``/`` is a directory
marker.

Example:
    >>> store = storager.open("s3://bucket/dir/?endpoint=http://127.0.0.1:9000")
    >>> store.write("a.txt", b"hi").content_length
    2
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO, Literal

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
from storager._retry_policy import RetryPolicy
from storager._sigv4 import presign
from storager._streams import iter_chunks
from storager.services.s3._address import Address
from storager.services.s3._connections import BodyStream
from storager.services.s3._credentials import CredentialSource, parse_credential, resolve_region
from storager.services.s3._errors import map_error
from storager.services.s3._generated import S3Generated
from storager.services.s3._headers import object_headers
from storager.services.s3._http_transport import HttpTransport
from storager.services.s3._multipart import S3Multipart
from storager.services.s3._reader import PrefetchingReader, StreamingReader
from storager.services.s3._transport import Head, Transport
from storager.services.s3._upload import PART_MAX, upload

if TYPE_CHECKING:
    from storager.aio import NativeAsync

__all__ = ["S3Storage"]

#: Keep-alive connections, and parallel requests of one helper, unless max_connections says.
MAX_CONNECTIONS = 16
#: A reader's ranged GETs in hand or in flight, of READ_BLOCK bytes each.
READ_AHEAD = 4
READ_BLOCK = 4 << 20
#: A whole-object read is one GET up to this size; beyond, parallel ranges of it.
READ_RANGE = 8 << 20
#: Longest validity SigV4 allows a presigned URL.
_PRESIGN_MAX = 7 * 24 * 3600
#: Largest object one CopyObject may copy; larger ones copy part by part.
_COPY_MAX = 5 << 30
_EMPTY: Mapping[str, str] = MappingProxyType({})


def _md5_base64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class S3Storage(S3Multipart, S3Generated):
    """A bucket (and a working directory in it) on S3 or an S3-compatible server.

    Attributes:
        request_retry: How each request is retried (``_retries.REQUEST_RETRY`` unless
            set): set ``RetryPolicy(max_attempts=1)`` when the store is wrapped in the
            ``Retry`` combinator, so attempts do not multiply.

    Example:
        >>> store = S3Storage(name="bucket", endpoint="http://127.0.0.1:9000")
        >>> store.write("a.txt", b"hi").etag
        '49f68a5c8493ec2c0bf489821c21fc3b'
    """

    _transport: Transport

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        location: str | None,
        force_path_style: bool | None,
        request_path: Literal["lean", "s3fs"] | None = None,
        max_connections: int | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise PairInvalidError("new", "s3", "", "pair 'max_connections' must be at least 1")
        if endpoint is not None:
            check_endpoint("s3", endpoint)
        if not name or "/" in name:
            raise PairInvalidError("new", "s3", "", "pair 'name' must be a bucket name")
        self._name = self._bucket = name
        self.max_connections = max_connections or MAX_CONNECTIONS
        pair = parse_credential(credential) if credential is not None else None
        self._credentials = CredentialSource(pair)
        self._region = resolve_region(location)
        self._address = Address.of(endpoint, name, self._region, force_path_style)
        if request_path == "s3fs":
            from storager.services.s3._s3fs_transport import S3fsTransport

            self._transport = S3fsTransport(
                name,
                endpoint=endpoint,
                region=self._region,
                credential=pair,
                force_path_style=force_path_style,
            )
        else:
            self._transport = HttpTransport(
                name,
                self._address,
                self._region,
                self._credentials,
                max_connections=self.max_connections,
            )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._executor_lock = threading.Lock()

    @property
    def request_retry(self) -> RetryPolicy:
        """How each request is retried; see the class docstring."""
        return self._transport.retry

    @request_retry.setter
    def request_retry(self, policy: RetryPolicy) -> None:
        if not isinstance(policy, RetryPolicy):
            raise InvalidArgumentError("new", "s3", "", "request_retry must be a RetryPolicy")
        self._transport.retry = policy

    def _close(self) -> None:
        self._transport.close()
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None and self._executor_pid == os.getpid():
            executor.shutdown(wait=True, cancel_futures=True)

    def _native_async(self) -> NativeAsync | None:
        """Return the async twin that runs on the caller's loop (see ``_async``); a store
        on the s3fs request path keeps the threaded view."""
        if not isinstance(self._transport, HttpTransport):
            return None
        from storager.services.s3._async import S3Async

        return S3Async(self, self._transport)

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_error(exc, op, path, self._bucket)

    def _pool(self) -> ThreadPoolExecutor:
        """The store's executor (``max_connections`` threads, started lazily); a forked
        child gets its own. No call starts a thread of its own."""
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

    @staticmethod
    def _key(path: str) -> str:
        return path[1:]

    # -- objects from answers ---------------------------------------------------------------

    def _object(self, path: str, head: Head) -> Object:
        is_dir = path.endswith("/")
        return Object(
            self._rel(path),
            ObjectMode.DIR if is_dir else ObjectMode.READ,
            content_length=None if is_dir else head.length,
            content_type=head.content_type,
            etag=head.etag,
            last_modified=head.last_modified,
            # The transports give fresh mappings: wrapped read-only, not copied.
            user_metadata=MappingProxyType(head.user_metadata) if head.user_metadata else _EMPTY,
            system_metadata=MappingProxyType(head.system) if head.system else _EMPTY,
        )

    def _has_children(self, op: str, prefix: str) -> bool:
        page = self._transport.list_page(
            op, prefix, self._key(prefix), delimiter=None, token=None, max_keys=1
        )
        return bool(page.entries or page.prefixes)

    def _head(self, op: str, path: str) -> Head:
        """HEAD an object; a missing key that is a directory prefix raises ObjectModeInvalid."""
        if path.endswith("/"):
            raise ObjectModeInvalidError(op, "s3", path, "is a directory")
        try:
            return self._transport.head(op, path, self._key(path))
        except NotFoundError as error:
            if "NoSuchBucket" not in error.reason and self._has_children(op, path + "/"):
                raise ObjectModeInvalidError(op, "s3", path, "is a directory") from error
            raise

    # -- Storager ---------------------------------------------------------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        if path.endswith("/"):
            raise ObjectModeInvalidError("read", "s3", path, "is a directory")
        key = self._key(path)
        data: bytes | bytearray | memoryview
        if size == 0:
            self._head("read", path)
            data = b""
        elif offset is None and size is None:
            data = self._read_whole(path, key)
        else:
            first = offset or 0
            last = None if size is None else first + size - 1
            data = self._transport.get("read", path, key, first=first, last=last).body
        if io_callback is not None and data:
            io_callback(len(data))
        return data if isinstance(data, bytes) else bytes(data)

    def _read_whole(self, path: str, key: str) -> bytes | bytearray | memoryview:
        """GET an object; a large one as parallel ranges, pinned to its ETag, into one buffer."""
        got = self._transport.get("read", path, key, first=0, last=READ_RANGE - 1)
        total = got.total if got.total is not None else len(got.body)
        if total <= len(got.body):
            return got.body  # the whole object (or, after a 416, an empty one)
        out = bytearray(total)
        view = memoryview(out)
        view[: len(got.body)] = got.body

        def fetch(at: int) -> None:
            last = min(at + READ_RANGE, total) - 1
            part = self._transport.get(
                "read", path, key, first=at, last=last, if_match=got.etag, into=view[at : last + 1]
            ).body
            if not (isinstance(part, memoryview) and part.obj is out):
                view[at : at + len(part)] = part

        futures = [self._pool().submit(fetch, at) for at in range(len(got.body), total, READ_RANGE)]
        for future in futures:
            future.result()
        view.release()
        return out

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        head = self._head("open_reader", path)
        start = min(offset or 0, head.length)
        span = head.length - start if size is None else min(size, head.length - start)
        key, etag, transport = self._key(path), head.etag, self._transport

        def fetch(at: int, into: memoryview) -> int:
            last = at + len(into) - 1
            body = transport.get(
                "open_reader", path, key, first=at, last=last, if_match=etag, into=into
            ).body
            if not (isinstance(body, memoryview) and body.obj is into.obj):
                into[: len(body)] = body
            return len(body)

        ranged = PrefetchingReader(
            fetch, self._pool(), start=start, length=span, depth=READ_AHEAD, block=READ_BLOCK
        )
        raw: io.RawIOBase = ranged
        if isinstance(transport, HttpTransport) and etag is not None and span:
            http, end = transport, start + span - 1

            def open_stream(at: int) -> BodyStream | None:
                return http.get_stream("open_reader", path, key, first=at, last=end, if_match=etag)

            raw = StreamingReader(open_stream, ranged, start=start, length=span)
        # Small reads are buffered; reads of 256 KiB or more go straight to the stream or blocks.
        return io.BufferedReader(raw, buffer_size=256 << 10)

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
        headers = object_headers(
            content_type=content_type,
            storage_class=storage_class,
            server_side_encryption=server_side_encryption,
            user_metadata=user_metadata,
        )
        conditions = object_headers(if_match=if_match, if_none_match=if_none_match)
        try:
            if isinstance(data, bytes | bytearray | memoryview) and len(data) <= PART_MAX:
                # Already in memory and small enough for one PUT: no buffering, no copy.
                length = memoryview(data).nbytes
                if size is not None and size != length:
                    raise InvalidArgumentError(
                        "write",
                        "s3",
                        path,
                        f"data has {length} bytes, not size={size}; nothing was written",
                    )
                if content_md5 is not None and content_md5 != _md5_base64(data):
                    # Checked here too: not every S3-compatible server checks Content-MD5.
                    raise InvalidArgumentError(
                        "write", "s3", path, "content_md5 does not match the data"
                    )
                single = dict(headers, **conditions)
                if content_md5 is not None:
                    single["content-md5"] = content_md5
                body = data if isinstance(data, bytes | bytearray) else bytes(data)
                etag = self._transport.put("write", path, key, body, single)
                if io_callback is not None and length:
                    io_callback(length)
            else:
                chunks = iter_chunks("write", "s3", path, data, size=size, io_callback=io_callback)
                etag, length = upload(
                    self._transport,
                    "write",
                    path,
                    key,
                    chunks,
                    headers=headers,
                    conditions=conditions,
                    executor=self._pool(),
                    in_flight=self._transport.parts_in_flight,
                    size=size,
                    content_md5=content_md5,
                )
        except PreconditionFailedError as error:
            # A failed If-None-Match means the object exists: the builtin FileExistsError.
            if if_none_match is not None and if_match is None:
                raise AlreadyExistsError(
                    "write", "s3", path, "object exists (if_none_match)"
                ) from error.__cause__
            raise
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=length,
            content_type=content_type,
            content_md5=content_md5,
            etag=etag,
            user_metadata=MappingProxyType(dict(user_metadata)) if user_metadata else _EMPTY,
        )

    def _stat(self, path: str) -> Object:
        if path.endswith("/"):
            return self._stat_dir(path)
        try:
            head = self._transport.head("stat", path, self._key(path))
        except NotFoundError as error:
            if "NoSuchBucket" in error.reason:
                raise
            try:
                return self._stat_dir(path + "/")
            except NotFoundError as dir_error:
                # HEAD cannot say why (no body); the listing names a missing bucket.
                if "NoSuchBucket" in dir_error.reason:
                    raise NotFoundError("stat", "s3", path, dir_error.reason) from error
            raise
        return self._object(path, head)

    def _stat_dir(self, path: str) -> Object:
        try:
            return self._object(path, self._transport.head("stat", path, self._key(path)))
        except NotFoundError:
            pass
        if self._has_children("stat", path):
            return Object(self._rel(path), ObjectMode.DIR)
        raise NotFoundError("stat", "s3", path)

    def _delete(self, path: str) -> None:
        # DeleteObject answers 204 for a missing key: idempotent by nature.
        self._transport.delete("delete", path, self._key(path))

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        """List page by page; the transport fetches the next page ahead."""
        recursive = list_mode == "prefix"
        prefix = path if recursive or path.endswith("/") else path + "/"
        own_marker = self._key(prefix)
        pages = self._transport.list_pages(
            "list", prefix, own_marker, delimiter=None if recursive else "/", executor=self._pool()
        )
        # Read-only and equal for every entry of one class: one mapping per class.
        systems: dict[str | None, Mapping[str, object]] = {None: _EMPTY}
        quick, rel, read = Object._quick, self._rel, ObjectMode.READ
        seen_dirs: set[str] = set()
        try:
            for page in pages:
                for key, length, modified, etag, storage_class in page.entries:
                    if key == own_marker and not recursive:
                        continue  # the directory's own marker
                    system = systems.get(storage_class)
                    if system is None:
                        system = systems[storage_class] = MappingProxyType(
                            {"storage_class": storage_class}
                        )
                    if key.endswith("/"):
                        yield quick(rel("/" + key), ObjectMode.DIR, None, modified, etag, system)
                    else:
                        # Object._quick: the dataclass __init__ would cost ~2 ms a page.
                        yield quick(rel("/" + key), read, length, modified, etag, system)
                for dir_key in page.prefixes:
                    if dir_key not in seen_dirs:
                        seen_dirs.add(dir_key)
                        yield Object(rel("/" + dir_key), ObjectMode.DIR)
        finally:
            pages.close()  # a caller that stopped early: drop the page in flight

    # -- Copier, Mover ----------------------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        head = self._head("copy", src)
        if head.length <= _COPY_MAX:
            self._transport.copy("copy", src, self._key(src), self._key(dst))
            return
        self._copy_parts(src, dst, head)

    def _move(self, src: str, dst: str) -> None:
        if src == dst:
            self._head("move", src)
            return
        self._copy(src, dst)
        self._transport.delete("move", src, self._key(src))

    # -- the questions of storager._names (exclusive_names) ------------------------------------

    def _probe_object(self, op: str, path: str) -> bool:
        try:
            self._transport.head(op, path, self._key(path))
        except NotFoundError:
            return False
        return True

    def _probe_children(self, op: str, prefix: str) -> bool:
        return self._has_children(op, prefix)

    # -- Direr ------------------------------------------------------------------------------

    def _create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        etag = self._transport.put("create_dir", dir_path, self._key(dir_path), b"", {})
        return Object(self._rel(dir_path), ObjectMode.DIR, etag=etag)

    # -- Presigner --------------------------------------------------------------------------

    def _presign(self, op: str, method: str, path: str, expire: int | None) -> str:
        if path.endswith("/"):
            raise PathInvalidError(op, "s3", path, "a directory has no URL")
        seconds = 3600 if expire is None else expire
        if not 1 <= seconds <= _PRESIGN_MAX:
            raise InvalidArgumentError(op, "s3", path, "expire must be 1 s to 7 days")
        key, address = self._key(path), self._address
        query = presign(
            method,
            address.path(key),
            [],
            address.host_header,
            self._credentials.current(op, path),
            self._region,
            seconds,
        )
        return f"{address.origin}{address.target(key)}?{query}"

    def _presign_read(self, path: str, *, expire: int | None) -> str:
        return self._presign("presign_read", "GET", path, expire)

    def _presign_write(self, path: str, *, expire: int | None) -> str:
        return self._presign("presign_write", "PUT", path, expire)

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
        keys = []
        for obj in self.list(self._rel(prefix), list_mode="prefix"):
            key = self._key(self._abs_path("delete", obj.path))
            keys.append(key + "/" if obj.is_dir and not key.endswith("/") else key)
        batches = [keys[i : i + 1000] for i in range(0, len(keys), 1000)]
        futures = [
            self._pool().submit(self._transport.delete_many, "delete", prefix, batch)
            for batch in batches
        ]
        for future in futures:
            failed = future.result()
            if failed:
                key, code = failed[0]
                raise InvalidArgumentError(
                    "delete", "s3", "/" + key, f"{len(failed)} keys not deleted ({code})"
                )
        return len(keys)
