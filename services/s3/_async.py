"""The native async s3 store: the sync store's operations on the caller's event loop.

``S3Storage.aio`` (and ``storager.open_async("s3://...")``) is an :class:`S3Async`: no
thread hop. Its requests are the sync store's requests (``_async_transport`` reuses the
sync transport's signer, answer parsing, retry policy and error map) sent over asyncio
streams, with one pool of kept-alive connections per running event loop
(:class:`~storager.aio.LoopLocal`), so one store works from several ``asyncio.run()``
calls and from loops in several threads.

The operations follow ``S3Storage``'s line by line (directory markers, the directory
answers of stat, conditional writes, large reads as parallel ranges pinned to one ETag,
streaming writes in bounded memory, copies over 5 GiB part by part); where a rule is a
pure function it is the sync one (``object_headers``, ``part_size``, ``head_of``...).
A store opened with ``request_path=s3fs`` keeps the threaded view.

An ``await store.aio.write(...)``, top-down: ``NativeAsync.write`` validates the pairs
with the generated sync method; :meth:`S3Async._write` sends bytes as one PUT, or
streams through ``_async_upload.upload`` (parts as tasks); ``_async_transport`` signs
and retries each request; ``_async_wire`` writes it on a kept-alive connection of the
running loop and reads the answer. Readers are ``_async_reader.ReadAheadReader``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from storager._async_protocols import AsyncPresigner, AsyncSegmenter
from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PreconditionFailedError,
)
from storager._object import Multipart, Object, ObjectMode, Part
from storager._protocols import IoCallback
from storager.aio._native import NativeCopier, NativeDirer, NativeMover, async_chunks
from storager.services.s3 import _COPY_MAX, READ_BLOCK, READ_RANGE, _md5_base64
from storager.services.s3._async_reader import ReadAheadReader
from storager.services.s3._async_transport import AsyncTransport
from storager.services.s3._async_upload import upload
from storager.services.s3._headers import object_headers
from storager.services.s3._http_transport import HttpTransport
from storager.services.s3._multipart import check_parts, completion_etags, needs_listing
from storager.services.s3._transport import Head
from storager.services.s3._upload import MAX_PARTS, PART_MAX
from storager.services.s3._xml import next_token, parse_list_page

if TYPE_CHECKING:
    from storager.services.s3 import S3Storage

__all__ = ["S3Async"]

SERVICE = "s3"
_EMPTY: Mapping[str, str] = MappingProxyType({})


class S3Async(NativeCopier, NativeMover, NativeDirer, AsyncSegmenter, AsyncPresigner):
    """The async twin of an :class:`S3Storage`; see the module docstring.

    A reader from ``open_reader`` fetches through the connections of the loop that
    reads, so it too may be used from several loops in turn.
    """

    _sync: S3Storage

    def __init__(self, store: S3Storage, transport: HttpTransport) -> None:
        super().__init__(store)
        self._transport = AsyncTransport(transport, limit=store.max_connections)
        self._in_flight = transport.parts_in_flight

    async def _aclose(self) -> None:
        await self._transport.aclose()

    @staticmethod
    def _key(path: str) -> str:
        return path[1:]

    def _rel(self, path: str) -> str:
        return self._sync._rel(path)

    def _object(self, path: str, head: Head) -> Object:
        return self._sync._object(path, head)

    async def _has_children(self, op: str, prefix: str) -> bool:
        body = await self._transport.list_body(op, prefix, self._key(prefix), None, None, 1)
        page = parse_list_page(body)
        return bool(page.entries or page.prefixes)

    async def _head(self, op: str, path: str) -> Head:
        """HEAD an object; a missing key that is a directory prefix raises ObjectModeInvalid."""
        if path.endswith("/"):
            raise ObjectModeInvalidError(op, SERVICE, path, "is a directory")
        try:
            return await self._transport.head(op, path, self._key(path))
        except NotFoundError as error:
            if "NoSuchBucket" not in error.reason and await self._has_children(op, path + "/"):
                raise ObjectModeInvalidError(op, SERVICE, path, "is a directory") from error
            raise

    # -- reads ----------------------------------------------------------------------------

    async def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        if path.endswith("/"):
            raise ObjectModeInvalidError("read", SERVICE, path, "is a directory")
        key = self._key(path)
        data: bytes | bytearray | memoryview
        if size == 0:
            await self._head("read", path)
            data = b""
        elif offset is None and size is None:
            data = await self._read_whole(path, key)
        else:
            first = offset or 0
            last = None if size is None else first + size - 1
            data = (await self._transport.get("read", path, key, first=first, last=last)).body
        if io_callback is not None and data:
            io_callback(len(data))
        return data if isinstance(data, bytes) else bytes(data)

    async def _read_whole(self, path: str, key: str) -> bytes | bytearray | memoryview:
        """GET an object; a large one as parallel ranges, pinned to its ETag, into one buffer."""
        got = await self._transport.get("read", path, key, first=0, last=READ_RANGE - 1)
        total = got.total if got.total is not None else len(got.body)
        if total <= len(got.body):
            return got.body  # the whole object (or, after a 416, an empty one)
        out = bytearray(total)
        view = memoryview(out)
        view[: len(got.body)] = got.body

        async def fetch(at: int) -> None:
            last = min(at + READ_RANGE, total) - 1
            into = view[at : last + 1]
            part = (
                await self._transport.get(
                    "read", path, key, first=at, last=last, if_match=got.etag, into=into
                )
            ).body
            if not (isinstance(part, memoryview) and part.obj is out):
                into[: len(part)] = part  # an answer that did not fit went to its own buffer

        # Each range is read straight into its place; the connection limit bounds how
        # many are in flight.
        await _all(fetch(at) for at in range(len(got.body), total, READ_RANGE))
        view.release()
        return out

    async def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> AsyncReader:
        head = await self._head("open_reader", path)
        start = min(offset or 0, head.length)
        span = head.length - start if size is None else min(size, head.length - start)
        key, etag, transport = self._key(path), head.etag, self._transport

        async def fetch(at: int, n: int) -> bytes | bytearray:
            # Through the connections of the loop reading now; into a buffer of its own.
            first, buffer = start + at, bytearray(n)
            got = await transport.get(
                "open_reader",
                path,
                key,
                first=first,
                last=first + n - 1,
                if_match=etag,
                into=memoryview(buffer),
            )
            body = got.body
            if isinstance(body, memoryview) and body.obj is buffer and len(body) == n:
                return buffer
            return bytes(body)

        return ReadAheadReader(fetch, span, block=READ_BLOCK)

    async def _stat(self, path: str) -> Object:
        if path.endswith("/"):
            return await self._stat_dir(path)
        try:
            head = await self._transport.head("stat", path, self._key(path))
        except NotFoundError as error:
            if "NoSuchBucket" in error.reason:
                raise
            try:
                return await self._stat_dir(path + "/")
            except NotFoundError as dir_error:
                # HEAD cannot say why (no body); the listing names a missing bucket.
                if "NoSuchBucket" in dir_error.reason:
                    raise NotFoundError("stat", SERVICE, path, dir_error.reason) from error
            raise
        return self._object(path, head)

    async def _stat_dir(self, path: str) -> Object:
        try:
            return self._object(path, await self._transport.head("stat", path, self._key(path)))
        except NotFoundError:
            pass
        if await self._has_children("stat", path):
            return Object(self._rel(path), ObjectMode.DIR)
        raise NotFoundError("stat", SERVICE, path)

    async def _list(self, path: str, *, list_mode: str | None) -> AsyncIterator[Object]:
        """List page by page, the next page requested before this one is parsed."""
        recursive = list_mode == "prefix"
        prefix = path if recursive or path.endswith("/") else path + "/"
        own_marker = self._key(prefix)
        delimiter = None if recursive else "/"
        systems: dict[str | None, Mapping[str, object]] = {None: _EMPTY}
        quick, rel, read = Object._quick, self._rel, ObjectMode.READ
        seen_dirs: set[str] = set()

        def request(token: str | None) -> asyncio.Task[bytes | bytearray | memoryview]:
            listing = self._transport.list_body("list", prefix, own_marker, delimiter, token)
            return asyncio.ensure_future(listing)

        task = request(None)
        try:
            while True:
                body = await task
                guess = next_token(body)
                if guess is not None:
                    task = request(guess)
                page = parse_list_page(body)
                if page.next_token != guess:
                    # The parsed token is the authority (as in the sync transport).
                    _drop(task)
                    if page.next_token is not None:
                        task = request(page.next_token)
                for key, length, modified, etag, storage_class in page.entries:
                    if key == own_marker and not recursive:
                        continue  # the directory's own marker
                    system = systems.get(storage_class)
                    if system is None:
                        system = systems[storage_class] = MappingProxyType(
                            {"storage_class": storage_class}
                        )
                    mode = ObjectMode.DIR if key.endswith("/") else read
                    size = None if mode is ObjectMode.DIR else length
                    yield quick(rel("/" + key), mode, size, modified, etag, system)
                for dir_key in page.prefixes:
                    if dir_key not in seen_dirs:
                        seen_dirs.add(dir_key)
                        yield Object(rel("/" + dir_key), ObjectMode.DIR)
                if page.next_token is None:
                    return
        finally:
            _drop(task)  # a caller that stopped early: drop the page in flight

    # -- writes ---------------------------------------------------------------------------

    async def _write(
        self,
        path: str,
        data: AsyncWriteData,
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
                length = memoryview(data).nbytes
                if size is not None and size != length:
                    raise InvalidArgumentError(
                        "write",
                        SERVICE,
                        path,
                        f"data has {length} bytes, not size={size}; nothing was written",
                    )
                if content_md5 is not None and content_md5 != _md5_base64(data):
                    raise InvalidArgumentError(
                        "write", SERVICE, path, "content_md5 does not match the data"
                    )
                single = dict(headers, **conditions)
                if content_md5 is not None:
                    single["content-md5"] = content_md5
                etag = await self._transport.put("write", path, key, data, single)
                if io_callback is not None and length:
                    io_callback(length)
            else:
                chunks = async_chunks(
                    "write", SERVICE, path, data, size=size, io_callback=io_callback
                )
                etag, length = await upload(
                    self._transport,
                    "write",
                    path,
                    key,
                    chunks,
                    headers=headers,
                    conditions=conditions,
                    in_flight=self._in_flight,
                    size=size,
                    content_md5=content_md5,
                )
        except PreconditionFailedError as error:
            # A failed If-None-Match means the object exists: the builtin FileExistsError.
            if if_none_match is not None and if_match is None:
                raise AlreadyExistsError(
                    "write", SERVICE, path, "object exists (if_none_match)"
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

    async def _delete(self, path: str) -> None:
        # DeleteObject answers 204 for a missing key: idempotent by nature.
        await self._transport.delete("delete", path, self._key(path))

    async def _create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        etag = await self._transport.put("create_dir", dir_path, self._key(dir_path), b"", {})
        return Object(self._rel(dir_path), ObjectMode.DIR, etag=etag)

    # -- Copier, Mover --------------------------------------------------------------------

    async def _copy(self, src: str, dst: str) -> None:
        head = await self._head("copy", src)
        if head.length <= _COPY_MAX:
            await self._transport.copy("copy", src, self._key(src), self._key(dst))
            return
        await self._copy_parts(src, dst, head)

    async def _copy_parts(self, src: str, dst: str, head: Head) -> None:
        """Copy an object over 5 GiB, part by part inside the service."""
        key, transport = self._key(dst), self._transport
        headers = object_headers(content_type=head.content_type, user_metadata=head.user_metadata)
        upload_id = await transport.create_multipart("copy", dst, key, headers)
        part = max(PART_MAX // 5, -(-head.length // MAX_PARTS))
        try:
            parts = []
            for number, start in enumerate(range(0, head.length, part), start=1):
                last = min(start + part, head.length) - 1
                etag = await transport.copy_part(
                    "copy", dst, self._key(src), key, upload_id, number, start, last
                )
                parts.append((number, etag))
            await transport.complete_multipart("copy", dst, key, upload_id, parts, {})
        except BaseException:
            await transport.abort_multipart("copy", dst, key, upload_id)
            raise

    async def _move(self, src: str, dst: str) -> None:
        if src == dst:
            await self._head("move", src)
            return
        await self._copy(src, dst)
        await self._transport.delete("move", src, self._key(src))

    # -- Segmenter ------------------------------------------------------------------------

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        """Start a multipart upload; see :class:`AsyncSegmenter`."""
        multipart: Multipart = await self._call("create_multipart", path, **pairs)
        return multipart

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        """Upload one part; see :class:`AsyncSegmenter`."""
        part: Part = await self._call("write_multipart", multipart, number, data, **pairs)
        return part

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Join the parts into the object; see :class:`AsyncSegmenter`."""
        obj: Object = await self._call("complete_multipart", multipart, parts, **pairs)
        return obj

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        """Abandon an upload; see :class:`AsyncSegmenter`."""
        await self._call("abort_multipart", multipart, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        """List the parts uploaded so far; see :class:`AsyncSegmenter`."""
        return self._iterate("list_multipart", multipart, **pairs)

    async def _create_multipart(
        self,
        path: str,
        *,
        content_type: str | None,
        server_side_encryption: str | None,
        storage_class: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Multipart:
        headers = object_headers(
            content_type=content_type,
            storage_class=storage_class,
            server_side_encryption=server_side_encryption,
            user_metadata=user_metadata,
        )
        upload_id = await self._transport.create_multipart(
            "create_multipart", path, self._key(path), headers
        )
        return Multipart(path, upload_id)

    async def _write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, *, size: int | None
    ) -> Part:
        path = multipart.path
        if not 1 <= number <= MAX_PARTS:
            raise InvalidArgumentError(
                "write_multipart", SERVICE, path, "part number must be 1 to 10000"
            )
        if size is not None and size > PART_MAX:
            raise InvalidArgumentError("write_multipart", SERVICE, path, "a part is at most 5 GiB")
        # One part is one request body: it is held in memory, at most 5 GiB.
        body = bytearray()
        async for chunk in async_chunks("write_multipart", SERVICE, path, data, size=size):
            body += chunk
            if len(body) > PART_MAX:
                raise InvalidArgumentError(
                    "write_multipart", SERVICE, path, "a part is at most 5 GiB"
                )
        etag = await self._transport.upload_part(
            "write_multipart", path, self._key(path), multipart.upload_id, number, body
        )
        return Part(number, len(body), etag)

    async def _complete_multipart(self, multipart: Multipart, parts: Sequence[Part]) -> Object:
        path = multipart.path
        check_parts(path, parts)
        uploaded = (
            [part async for part in self._list_multipart(multipart)] if needs_listing(parts) else []
        )
        listed = completion_etags(path, parts, uploaded)
        final_etag = await self._transport.complete_multipart(
            "complete_multipart", path, self._key(path), multipart.upload_id, listed, {}
        )
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=sum(part.size for part in parts),
            etag=final_etag,
        )

    async def _abort_multipart(self, multipart: Multipart) -> None:
        path = multipart.path
        await self._transport.abort_multipart(
            "abort_multipart", path, self._key(path), multipart.upload_id
        )

    async def _list_multipart(self, multipart: Multipart) -> AsyncIterator[Part]:
        path = multipart.path
        marker = 0
        while True:
            parts, next_marker = await self._transport.list_parts(
                "list_multipart", path, self._key(path), multipart.upload_id, marker
            )
            for part in parts:
                yield Part(part.number, part.size, part.etag)
            if next_marker is None or next_marker <= marker:
                return
            marker = next_marker

    # -- Presigner ------------------------------------------------------------------------

    async def presign_read(self, path: str, **pairs: Any) -> str:
        """Return a URL to GET the object with; see :class:`AsyncPresigner`."""
        url: str = await self._call("presign_read", path, **pairs)
        return url

    async def presign_write(self, path: str, **pairs: Any) -> str:
        """Return a URL to PUT the object with; see :class:`AsyncPresigner`."""
        url: str = await self._call("presign_write", path, **pairs)
        return url

    async def _presign_read(self, path: str, *, expire: int | None) -> str:
        # Signing a URL sends nothing; only credentials from botocore's chain may block.
        return await self._off_loop_if_chain(self._sync._presign_read, path, expire=expire)

    async def _presign_write(self, path: str, *, expire: int | None) -> str:
        return await self._off_loop_if_chain(self._sync._presign_write, path, expire=expire)

    async def _off_loop_if_chain(self, sign: Any, path: str, *, expire: int | None) -> str:
        if self._transport.sync.credentials.pair is not None:
            url: str = sign(path, expire=expire)
            return url
        url = await asyncio.to_thread(sign, path, expire=expire)
        return url


def _drop(task: asyncio.Task[Any]) -> None:
    """Cancel a task no longer wanted; a failure it already had is dropped with it."""
    if task.done():
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would log it as never retrieved
    else:
        task.cancel()


async def _all(coroutines: Any) -> None:
    """Await every coroutine as a task; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
