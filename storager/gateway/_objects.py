"""Object operations: GetObject, HeadObject, PutObject, CopyObject, DeleteObject(s)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import unquote

from storager._etag import plain_md5
from storager._object import Object
from storager._protocols import Copier, Direr
from storager.gateway._body import BATCH, BodyStream, ClientDisconnected
from storager.gateway._bucket import Bucket
from storager.gateway._errors import S3Error, s3_error_for
from storager.gateway._http import Request, Response, http_date, parse_http_date
from storager.gateway._keys import store_path
from storager.gateway._xml import document, element, iso, parse_delete

__all__ = [
    "byte_range",
    "check_conditions",
    "copy_object",
    "delete_object",
    "delete_objects",
    "etag_of",
    "etag_value",
    "get_object",
    "head_object",
    "object_headers",
    "put_object",
    "stat_key",
    "write_body",
]

_META = "x-amz-meta-"


def etag_value(obj: Object) -> str:
    """The object's ETag, unquoted, in a form S3 clients do not misread.

    Clients take a tag without ``-`` for the content's MD5 and check uploads and
    downloads against it (s3cmd refuses a PUT whose answer's tag is not the MD5 of what
    it sent). So the store's tag is given as it is when it is an MD5 (32 hex digits) or
    already has a ``-`` (a multipart tag); any other tag, and the one made from the
    path, size and mtime for a store that reports none, ends in ``-1`` as multipart tags
    do, which clients know is not an MD5. Computing an MD5 of every upload instead would
    cost more than the rest of a PUT.
    """
    tag = obj.etag.strip('"') if obj.etag else ""
    if not tag:
        stamp = obj.last_modified.isoformat() if obj.last_modified else ""
        text = f"{obj.path}\0{obj.content_length}\0{stamp}".encode()
        tag = hashlib.blake2b(text, digest_size=8).hexdigest()
    if "-" in tag or plain_md5(tag) is not None:
        return tag
    return f"{tag}-1"


def etag_of(obj: Object) -> str:
    """The quoted ETag S3 clients expect."""
    return f'"{etag_value(obj)}"'


def object_headers(obj: Object) -> list[tuple[str, str]]:
    """The headers GET and HEAD answer with for ``obj``."""
    headers = [
        ("ETag", etag_of(obj)),
        ("Content-Type", obj.content_type or "application/octet-stream"),
        ("Accept-Ranges", "bytes"),
    ]
    if obj.last_modified is not None:
        headers.append(("Last-Modified", http_date(obj.last_modified)))
    headers.extend((f"{_META}{name}", value) for name, value in obj.user_metadata.items())
    return headers


def write_pairs(bucket: Bucket, headers: Mapping[str, str], op: str) -> dict[str, Any]:
    """The store pairs a write's headers ask for (content type, metadata, conditions)."""
    pairs: dict[str, Any] = {}
    content_type = headers.get("content-type")
    if content_type and bucket.accepts(op, "content_type"):
        pairs["content_type"] = content_type
    metadata = {n[len(_META) :]: v for n, v in headers.items() if n.startswith(_META)}
    # A store that keeps no metadata stores the object without it (documented): clients
    # such as rclone send x-amz-meta-mtime on every upload, and refusing would refuse them.
    if metadata and bucket.accepts(op, "user_metadata"):
        pairs["user_metadata"] = metadata
    for header, pair in (("if-none-match", "if_none_match"), ("if-match", "if_match")):
        if header in headers:
            if not bucket.accepts(op, pair):
                raise S3Error("NotImplemented", f"this bucket's store cannot honour {header}")
            pairs[pair] = headers[header].strip().strip('"')
    return pairs


def check_conditions(headers: Mapping[str, str], obj: Object) -> None:
    """Raise PreconditionFailed (412) or NotModified (304) as RFC 7232 orders them."""
    etag = etag_value(obj)
    if_match = headers.get("if-match")
    if if_match is not None and etag not in _tags(if_match) and "*" not in _tags(if_match):
        raise S3Error("PreconditionFailed", "If-Match does not hold")
    since = parse_http_date(headers.get("if-unmodified-since", ""))
    if if_match is None and since and obj.last_modified and obj.last_modified > since:
        raise S3Error("PreconditionFailed", "If-Unmodified-Since does not hold")
    if_none = headers.get("if-none-match")
    if if_none is not None and (etag in _tags(if_none) or "*" in _tags(if_none)):
        raise S3Error("NotModified", "not modified")
    modified = parse_http_date(headers.get("if-modified-since", ""))
    if if_none is None and modified and obj.last_modified and obj.last_modified <= modified:
        raise S3Error("NotModified", "not modified")


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}


def byte_range(text: str, size: int) -> tuple[int, int] | None:
    """``(offset, length)`` of a single ``bytes=`` range; None to send the whole object."""
    unit, _, spec = text.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                raise S3Error("InvalidRange", "the requested range is not satisfiable")
            start = max(0, size - suffix)
            return start, size - start
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        raise S3Error("InvalidRange", "the requested range is not satisfiable")
    if end < start:
        return None
    return start, min(end, size - 1) - start + 1


async def stat_key(bucket: Bucket, path: str) -> Object:
    obj = await bucket.run(bucket.store.stat, path)
    if obj.is_dir and not path.endswith("/"):
        raise S3Error("NoSuchKey", "the specified key does not exist")
    return obj


async def head_object(bucket: Bucket, req: Request) -> Response:
    """HeadObject."""
    obj = await stat_key(bucket, store_path(req.key))
    check_conditions(req.headers, obj)
    size = obj.content_length or 0
    headers = object_headers(obj)
    span = byte_range(req.headers["range"], size) if "range" in req.headers and size else None
    if span is not None:
        headers.append(("Content-Range", f"bytes {span[0]}-{span[0] + span[1] - 1}/{size}"))
        return Response(206, headers, length=span[1])
    return Response(200, headers, length=size)


async def get_object(bucket: Bucket, req: Request) -> Response:
    """GetObject, whole or one range: small ones in one store call, others streamed."""
    path = store_path(req.key)
    obj, status, span, content = await bucket.run(_fetch, bucket, path, req.headers)
    headers = object_headers(obj)
    offset, length = span
    if status == 206:
        size = obj.content_length or 0
        headers.append(("Content-Range", f"bytes {offset}-{offset + length - 1}/{size}"))
    if isinstance(content, bytes):
        return Response(status, headers, content)
    return Response(status, headers, _chunks(bucket, content, length), length=length)


def _fetch(
    bucket: Bucket, path: str, headers: Mapping[str, str]
) -> tuple[Object, int, tuple[int, int], bytes | BinaryIO]:
    """Stat, check conditions and range, and read a small answer whole (one thread hop)."""
    obj = bucket.store.stat(path)
    if obj.is_dir and not path.endswith("/"):
        raise S3Error("NoSuchKey", "the specified key does not exist")
    check_conditions(headers, obj)
    size = obj.content_length or 0
    offset, length, status = 0, size, 200
    if "range" in headers:
        if size == 0:
            raise S3Error("InvalidRange", "the requested range is not satisfiable")
        span = byte_range(headers["range"], size)
        if span is not None:
            offset, length, status = span[0], span[1], 206
    if obj.is_dir or length == 0:
        return obj, status, (offset, length), b""
    if length <= BATCH:
        with _open(bucket, path, offset, length) as reader:
            data = reader.read(length)
        if len(data) != length:
            raise S3Error("InternalError", "the object ended before its length")
        return obj, status, (offset, length), data
    return obj, status, (offset, length), _open(bucket, path, offset, length)


def _open(bucket: Bucket, path: str, offset: int, length: int) -> BinaryIO:
    pairs: dict[str, int] = {}
    if bucket.accepts("open_reader", "offset") and offset:
        pairs["offset"] = offset
    if bucket.accepts("open_reader", "size"):
        pairs["size"] = length
    reader = bucket.store.open_reader(path, **pairs)
    if offset and "offset" not in pairs:
        reader.seek(offset)
    return reader


def _read_some(reader: BinaryIO, wanted: int) -> bytes:
    return reader.read(wanted)


async def _chunks(bucket: Bucket, reader: BinaryIO, length: int) -> AsyncIterator[bytes]:
    try:
        left = length
        while left > 0:
            data = await bucket.run(_read_some, reader, min(BATCH, left))
            if not data:
                raise S3Error("InternalError", "the object ended before its length")
            left -= len(data)
            yield data
    finally:
        await bucket.run(reader.close)


async def write_body(bucket: Bucket, req: Request, path: str, pairs: dict[str, Any]) -> Object:
    """Stream the request body into ``store.write``; visible only if every check passed."""
    length = body_length(req)
    if length is not None and bucket.accepts("write", "size"):
        pairs["size"] = length
    if length is not None and length <= BATCH:
        # A small body is read and checked whole first: one store call, no thread hops
        # back to the event loop for the body.
        data = await req.small_body(limit=BATCH)
        obj = await bucket.run(bucket.store.write, path, data, **pairs)
        return await settled(bucket, path, obj)
    body = req.body_stream()
    try:
        obj = await bucket.run_streaming(bucket.store.write, path, body, **pairs)
    except BaseException as exc:
        raise _body_failure(body, exc) from exc
    return await settled(bucket, path, obj)


async def settled(bucket: Bucket, path: str, obj: Object) -> Object:
    """``obj`` as stat reports it when a write returned too little for a stable ETag."""
    if obj.etag is None and obj.last_modified is None:
        return await bucket.run(bucket.store.stat, path)
    return obj


def body_length(req: Request) -> int | None:
    """The decoded body length the request declared, if any."""
    text = req.headers.get("x-amz-decoded-content-length") or req.headers.get("content-length")
    if "x-amz-decoded-content-length" not in req.headers and "aws-chunked" in req.headers.get(
        "content-encoding", ""
    ):
        return None
    return int(text) if text and text.isdigit() else None


def _body_failure(body: BodyStream, exc: BaseException) -> BaseException:
    """What a failed write answers: the body's own failure first, then the store's error."""
    if isinstance(body.failure, ClientDisconnected):
        return body.failure
    if body.failure is not None:
        return body.failure
    return exc


async def put_object(bucket: Bucket, req: Request) -> Response:
    """PutObject (a key ending in ``/`` creates a directory marker where the store has dirs)."""
    path = store_path(req.key)
    pairs = write_pairs(bucket, req.headers, "write")
    if path.endswith("/"):
        if await req.small_body(limit=0) != b"":
            raise S3Error("InvalidArgument", "a key ending in '/' takes no data")
        if not isinstance(bucket.store, Direr):
            raise S3Error("NotImplemented", "this bucket's store has no directories")
        obj = await bucket.run(bucket.store.create_dir, path)
    else:
        obj = await write_body(bucket, req, path, pairs)
    return Response(200, [("ETag", etag_of(obj))])


async def delete_object(bucket: Bucket, req: Request) -> Response:
    """DeleteObject: deleting a missing key succeeds."""
    await bucket.run(bucket.store.delete, store_path(req.key))
    return Response(204)


def copy_source(req: Request) -> tuple[str, str]:
    """``(bucket, key)`` of ``x-amz-copy-source`` (``/bucket/key``, percent-encoded)."""
    source = unquote(req.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
    name, _, key = source.partition("/")
    if not name or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be /bucket/key")
    return name, key


def _stream_copy(src: Bucket, src_path: str, dst: Bucket, dst_path: str, pairs: Any) -> None:
    with src.store.open_reader(src_path) as reader:

        def pieces() -> Iterator[bytes]:
            while data := reader.read(BATCH):
                yield data

        dst.store.write(dst_path, pieces(), **pairs)


async def copy_object(bucket: Bucket, req: Request, source: Bucket) -> Response:
    """CopyObject; a server-side ``copy`` when both keys are in one store and metadata stays."""
    _, src_key = copy_source(req)
    src_path, dst_path = store_path(src_key), store_path(req.key)
    src_obj = await stat_key(source, src_path)
    conditions = {
        name.removeprefix("x-amz-copy-source-"): value
        for name, value in req.headers.items()
        if name.startswith("x-amz-copy-source-if-")
    }
    check_conditions(conditions, src_obj)
    replace = req.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    if (
        source is bucket
        and not replace
        and isinstance(bucket.store, Copier)
        and src_path != dst_path
    ):
        await bucket.run(bucket.store.copy, src_path, dst_path)
    else:
        if replace:
            pairs = write_pairs(bucket, req.headers, "write")
        else:
            pairs = {}
            if src_obj.content_type and bucket.accepts("write", "content_type"):
                pairs["content_type"] = src_obj.content_type
            if src_obj.user_metadata and bucket.accepts("write", "user_metadata"):
                pairs["user_metadata"] = dict(src_obj.user_metadata)
        await bucket.run_threaded(_stream_copy, source, src_path, bucket, dst_path, pairs)
    obj = await stat_key(bucket, dst_path)
    body = document(
        "CopyObjectResult",
        [element("LastModified", iso(obj.last_modified)), element("ETag", etag_of(obj))],
    )
    return Response(200, [("Content-Type", "application/xml")], body)


async def delete_objects(bucket: Bucket, req: Request) -> Response:
    """DeleteObjects: each key deleted or reported, all in one answer."""
    keys, quiet = parse_delete(await req.small_body())
    parts: list[str] = []
    for key in keys:
        try:
            await bucket.run(bucket.store.delete, store_path(key))
        except Exception as exc:  # reported per key, as S3 does
            error = s3_error_for(exc)
            parts.append(
                "<Error>"
                + element("Key", key)
                + element("Code", error.code)
                + element("Message", error.message)
                + "</Error>"
            )
        else:
            if not quiet:
                parts.append("<Deleted>" + element("Key", key) + "</Deleted>")
    return Response(200, [("Content-Type", "application/xml")], document("DeleteResult", parts))
