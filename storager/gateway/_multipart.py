"""Multipart operations: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
ListMultipartUploads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

from storager._object import Multipart, Object, Part
from storager.gateway._body import BATCH
from storager.gateway._bucket import Bucket
from storager.gateway._errors import S3Error, s3_error_for
from storager.gateway._http import Request, Response
from storager.gateway._keys import store_path
from storager.gateway._objects import (
    body_length,
    byte_range,
    check_conditions,
    copy_source,
    etag_of,
    stat_key,
    write_pairs,
)
from storager.gateway._uploads import PartStore, Upload, Uploads, part_store
from storager.gateway._xml import check_query_text, document, element, iso, parse_complete

__all__ = [
    "MIN_PART_SIZE",
    "abort_upload",
    "complete_upload",
    "create_upload",
    "list_parts",
    "list_uploads",
    "upload_part",
    "upload_part_copy",
]

#: The smallest part but the last, as S3 requires.
MIN_PART_SIZE = 5 << 20
#: How often a long Complete sends a space to keep the connection alive.
KEEP_ALIVE = 5.0
_XML = [("Content-Type", "application/xml")]


def _multipart(bucket: Bucket, uploads: Uploads, req: Request) -> Multipart:
    upload_id = req.query.get("uploadId", "")
    upload = uploads.get(upload_id)
    if upload is not None:
        if upload.bucket != bucket.name or upload.key != req.key:
            raise S3Error("NoSuchUpload", "the upload does not exist")
        return upload.multipart
    if not upload_id:
        raise S3Error("NoSuchUpload", "the upload does not exist")
    # Started by another gateway process over the same store.
    work_dir = bucket.store.metadata().work_dir
    return Multipart(work_dir + store_path(req.key), upload_id)


def _missing_upload(exc: BaseException) -> S3Error:
    return s3_error_for(exc, missing="NoSuchUpload")


async def create_upload(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """CreateMultipartUpload."""
    path = store_path(req.key)
    pairs = write_pairs(bucket, req.headers, "create_multipart")
    parts = part_store(bucket.store)
    multipart = await bucket.run(parts.create_multipart, path, **pairs)
    uploads.add(Upload(bucket.name, req.key, multipart, datetime.now(UTC)))
    body = document(
        "InitiateMultipartUploadResult",
        [
            element("Bucket", bucket.name),
            element("Key", req.key),
            element("UploadId", multipart.upload_id),
        ],
    )
    return Response(200, list(_XML), body)


def _part_number(req: Request) -> int:
    text = req.query.get("partNumber", "")
    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise S3Error("InvalidArgument", "partNumber must be 1 to 10,000")
    return int(text)


async def upload_part(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """UploadPart: the body streams into the part, checked like a PutObject body."""
    number = _part_number(req)
    multipart = _multipart(bucket, uploads, req)
    parts = part_store(bucket.store)
    body = req.body_stream()
    pairs: dict[str, Any] = {}
    length = body_length(req)
    if length is not None and bucket.accepts("write_multipart", "size"):
        pairs["size"] = length
    try:
        part = await bucket.run_streaming(parts.write_multipart, multipart, number, body, **pairs)
    except BaseException as exc:
        if body.failure is not None:
            raise body.failure from exc
        raise _missing_upload(exc) from exc
    return Response(200, [("ETag", f'"{part.etag}"')])


async def upload_part_copy(
    bucket: Bucket, uploads: Uploads, req: Request, source: Bucket
) -> Response:
    """UploadPartCopy, of the whole source or ``x-amz-copy-source-range``."""
    number = _part_number(req)
    multipart = _multipart(bucket, uploads, req)
    _, src_key = copy_source(req)
    src_path = store_path(src_key)
    src_obj = await stat_key(source, src_path)
    check_conditions(
        {
            n.removeprefix("x-amz-copy-source-"): v
            for n, v in req.headers.items()
            if n.startswith("x-amz-copy-source-if-")
        },
        src_obj,
    )
    size = src_obj.content_length or 0
    offset, length = 0, size
    if "x-amz-copy-source-range" in req.headers:
        span = byte_range(req.headers["x-amz-copy-source-range"], size)
        if span is None:
            raise S3Error("InvalidArgument", "x-amz-copy-source-range must be bytes=first-last")
        offset, length = span
    parts = part_store(bucket.store)

    def copy() -> Part:
        with source.store.open_reader(src_path) as reader:
            reader.seek(offset)

            def pieces() -> Iterator[bytes]:
                left = length
                while left > 0:
                    data = reader.read(min(BATCH, left))
                    if not data:
                        return
                    left -= len(data)
                    yield data

            return parts.write_multipart(multipart, number, pieces())

    try:
        part = await bucket.run_threaded(copy)
    except Exception as exc:
        raise _missing_upload(exc) from exc
    body = document(
        "CopyPartResult", [element("LastModified", iso(None)), element("ETag", f'"{part.etag}"')]
    )
    return Response(200, list(_XML), body)


def _chosen_parts(
    parts: PartStore, multipart: Multipart, wanted: list[tuple[int, str]]
) -> list[Part]:
    uploaded = {part.number: part for part in parts.list_multipart(multipart)}
    chosen: list[Part] = []
    previous = 0
    for index, (number, etag) in enumerate(wanted):
        if number <= previous:
            raise S3Error("InvalidPartOrder", "the parts must be in ascending order")
        previous = number
        part = uploaded.get(number)
        if part is None or (etag and part.etag.strip('"') != etag):
            raise S3Error("InvalidPart", f"part {number} was not uploaded or its ETag differs")
        if index < len(wanted) - 1 and part.size < MIN_PART_SIZE:
            raise S3Error("EntityTooSmall", f"part {number} is smaller than 5 MiB")
        chosen.append(part)
    return chosen


async def complete_upload(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """CompleteMultipartUpload; if it takes long, spaces keep the connection alive."""
    multipart = _multipart(bucket, uploads, req)
    wanted = list(parse_complete(await req.small_body()))
    parts = part_store(bucket.store)

    def complete() -> Object:
        obj = parts.complete_multipart(multipart, _chosen_parts(parts, multipart, wanted))
        if obj.etag is None and obj.last_modified is None:
            return bucket.store.stat(store_path(req.key))
        return obj

    task = asyncio.ensure_future(bucket.run_threaded(complete))
    done, _ = await asyncio.wait({task}, timeout=KEEP_ALIVE)
    if done:
        try:
            obj = task.result()
        except Exception as exc:
            raise _missing_upload(exc) from exc
        uploads.drop(multipart.upload_id)
        return Response(200, list(_XML), _completed(bucket, req, obj))
    return Response(200, list(_XML), _keep_alive(bucket, uploads, req, multipart, task))


def _completed(bucket: Bucket, req: Request, obj: Object) -> bytes:
    return document(
        "CompleteMultipartUploadResult",
        [
            element("Location", f"/{bucket.name}/{req.key}"),
            element("Bucket", bucket.name),
            element("Key", req.key),
            element("ETag", etag_of(obj)),
        ],
    )


async def _keep_alive(
    bucket: Bucket,
    uploads: Uploads,
    req: Request,
    multipart: Multipart,
    task: asyncio.Future[Object],
) -> AsyncIterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n'
    while not task.done():
        await asyncio.wait({task}, timeout=KEEP_ALIVE)
        if not task.done():
            yield b" "
    try:
        obj = task.result()
    except Exception as exc:
        error = _missing_upload(exc)
        yield (
            f"<Error>{element('Code', error.code)}{element('Message', error.message)}</Error>"
        ).encode()
        return
    uploads.drop(multipart.upload_id)
    yield _completed(bucket, req, obj).partition(b"\n")[2]


async def abort_upload(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """AbortMultipartUpload."""
    multipart = _multipart(bucket, uploads, req)
    parts = part_store(bucket.store)
    try:
        await bucket.run(parts.abort_multipart, multipart)
    except Exception as exc:
        raise _missing_upload(exc) from exc
    uploads.drop(multipart.upload_id)
    return Response(204)


async def list_parts(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """ListParts, paged by ``part-number-marker`` and ``max-parts``."""
    multipart = _multipart(bucket, uploads, req)
    parts = part_store(bucket.store)
    marker_text = req.query.get("part-number-marker", "0")
    limit_text = req.query.get("max-parts", "1000")
    if not marker_text.isdigit() or not limit_text.isdigit():
        raise S3Error("InvalidArgument", "part-number-marker and max-parts are whole numbers")
    marker, limit = int(marker_text), min(int(limit_text), 1000)
    try:
        found = await bucket.run(lambda: list(parts.list_multipart(multipart)))
    except Exception as exc:
        raise _missing_upload(exc) from exc
    after = [part for part in found if part.number > marker]
    page, truncated = after[:limit], len(after) > limit
    body = [
        element("Bucket", bucket.name),
        element("Key", req.key),
        element("UploadId", multipart.upload_id),
        element("PartNumberMarker", marker),
        element("MaxParts", limit),
        element("IsTruncated", truncated),
    ]
    if page:
        body.append(element("NextPartNumberMarker", page[-1].number))
    for part in page:
        body.append(
            "<Part>"
            + element("PartNumber", part.number)
            + element("LastModified", iso(None))
            + element("ETag", f'"{part.etag}"')
            + element("Size", part.size)
            + "</Part>"
        )
    return Response(200, list(_XML), document("ListPartsResult", body))


def _after_markers(upload: Upload, key_marker: str, id_marker: str) -> bool:
    """Whether ``upload`` follows the markers, by S3's rule: its key sorts after
    ``key_marker``, or, given ``id_marker``, it is an upload of ``key_marker`` whose id
    sorts after ``id_marker`` (so the next page holds even when the marker's own upload
    was completed or aborted in between)."""
    if upload.key != key_marker:
        return upload.key > key_marker
    return bool(id_marker) and upload.multipart.upload_id > id_marker


async def list_uploads(bucket: Bucket, uploads: Uploads, req: Request) -> Response:
    """ListMultipartUploads: every upload noted in the store, whichever process started it."""
    check_query_text(req.query, ("prefix", "key-marker", "upload-id-marker", "delimiter"))
    prefix = req.query.get("prefix", "")
    key_marker = req.query.get("key-marker", "")
    id_marker = req.query.get("upload-id-marker", "")
    limit_text = req.query.get("max-uploads", "1000")
    if not limit_text.isdigit():
        raise S3Error("InvalidArgument", "max-uploads must be a whole number")
    limit = min(int(limit_text), 1000)
    parts = part_store(bucket.store)
    known = [
        Upload(bucket.name, started.key, started.multipart, started.initiated)
        for started in await bucket.run(lambda: list(parts.started()))
    ]
    found = sorted(
        (u for u in known if u.key.startswith(prefix) and _after_markers(u, key_marker, id_marker)),
        key=lambda u: (u.key, u.multipart.upload_id),
    )
    page, truncated = found[:limit], len(found) > limit
    body = [
        element("Bucket", bucket.name),
        element("KeyMarker", key_marker),
        element("UploadIdMarker", id_marker),
        element("Prefix", prefix),
        element("MaxUploads", limit),
        element("IsTruncated", truncated),
    ]
    if truncated:
        body += [
            element("NextKeyMarker", page[-1].key),
            element("NextUploadIdMarker", page[-1].multipart.upload_id),
        ]
    for upload in page:
        body.append(
            "<Upload>"
            + element("Key", upload.key)
            + element("UploadId", upload.multipart.upload_id)
            + element("Initiated", iso(upload.initiated))
            + element("StorageClass", "STANDARD")
            + "</Upload>"
        )
    return Response(200, list(_XML), document("ListMultipartUploadsResult", body))
