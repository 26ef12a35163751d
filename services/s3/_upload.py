"""The one streaming uploader: a single PUT when the data fits a part, parallel parts
otherwise, in bounded memory.

A write holds the part being filled plus at most ``in_flight`` parts uploading on the
store's executor, so memory is ``(in_flight + 1) * part_size`` whatever the object's
size (5 MiB parts, 4 in flight: 25 MiB). It needs only the transport's PUT and
multipart requests, so any store whose service offers "put one object" and "stage
blocks, then commit the list" could use the same loop (azblob's put_block/put_block_list
and gcs's resumable chunks are the same shape).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future

from storager._errors import InvalidArgumentError
from storager.services.s3._transport import Transport

__all__ = ["MAX_PARTS", "PART_MAX", "PART_MIN", "part_size", "upload"]

#: Smallest part S3 accepts, except the last.
PART_MIN = 5 << 20
#: Largest part S3 accepts (and the largest single PUT).
PART_MAX = 5 << 30
#: Most parts one upload may have.
MAX_PARTS = 10_000


def part_size(number: int, size: int | None) -> int:
    """Return the size of part ``number`` (from 1) of a streaming write.

    Parts are S3's 5 MiB minimum, so more of them upload in parallel within the same
    memory. With a known total, every part has one size, large enough to stay within
    10,000 parts; without one, parts grow by 5 MiB every 1,000, which reaches about
    270 GiB before the part numbers run out.
    """
    if size is not None:
        needed = -(-size // MAX_PARTS)
        rounded = -(-needed // (1 << 20)) << 20
        return min(max(PART_MIN, rounded), PART_MAX)
    return PART_MIN * (1 + (number - 1) // 1000)


def upload(
    transport: Transport,
    op: str,
    path: str,
    key: str,
    chunks: Iterable[bytes | bytearray | memoryview],
    *,
    headers: Mapping[str, str],
    conditions: Mapping[str, str],
    executor: Executor,
    in_flight: int,
    size: int | None,
    content_md5: str | None,
) -> tuple[str | None, int]:
    """Write ``chunks`` as the object ``key``; return its ETag and length.

    Args:
        headers: The object's headers (``_headers.object_headers``), sent with the PUT
            or the upload's creation.
        conditions: ``if-match`` / ``if-none-match``, sent with the PUT or the
            completion, where S3 checks them.
        in_flight: Parts uploading at once while the next fills.
        size: The exact length, when the caller gave it (parts are sized from it).
        content_md5: Checked against the data before anything becomes visible.

    A multipart upload that fails for any reason (the data's length or MD5 included)
    is aborted, so nothing becomes visible.
    """
    md5 = hashlib.md5() if content_md5 is not None else None
    buffer = bytearray()
    total = 0
    upload_id: str | None = None
    number = 0
    parts: list[tuple[int, str]] = []
    pending: deque[tuple[int, Future[str]]] = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep:
            part_number, future = pending.popleft()
            parts.append((part_number, future.result()))

    def send(body: bytearray) -> None:
        nonlocal upload_id, number
        if upload_id is None:
            upload_id = transport.create_multipart(op, path, key, headers)
        number += 1
        if number > MAX_PARTS:
            raise InvalidArgumentError(op, "s3", path, "data needs more than 10,000 parts")
        settle(in_flight - 1)
        future = executor.submit(transport.upload_part, op, path, key, upload_id, number, body)
        pending.append((number, future))

    try:
        for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            total += chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            buffer += chunk
            cut = part_size(number + 1, size)
            while len(buffer) >= cut:
                # The buffer itself becomes the part; only the overshoot is copied.
                part, buffer = buffer, buffer[cut:]
                del part[cut:]
                send(part)
                del part
                cut = part_size(number + 1, size)
        if md5 is not None and base64.b64encode(md5.digest()).decode() != content_md5:
            raise InvalidArgumentError(
                op, "s3", path, "content_md5 does not match the data; nothing was written"
            )
        if upload_id is None:
            single = dict(headers, **conditions)
            if content_md5 is not None:
                single["content-md5"] = content_md5
            return transport.put(op, path, key, buffer, single), total
        if buffer:
            send(buffer)
            buffer = bytearray()
        settle(0)
        return transport.complete_multipart(op, path, key, upload_id, parts, conditions), total
    except BaseException:
        for _, future in pending:
            future.cancel()
        for _, future in pending:
            if not future.cancelled():
                with contextlib.suppress(BaseException):
                    future.result()
        if upload_id is not None:
            with contextlib.suppress(Exception):  # the first error is the one raised
                transport.abort_multipart(op, path, key, upload_id)
        raise
