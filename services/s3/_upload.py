"""Streaming writes: one PUT when the data fits a part, multipart otherwise.

Memory stays bounded: the writer holds the part being filled plus at most
``MAX_IN_FLIGHT`` parts being uploaded, whatever the object's size.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from storager._errors import InvalidArgumentError

__all__ = ["MAX_PARTS", "PART_MAX", "PART_MIN", "PART_SIZE", "Upload", "part_size_for", "stream"]

#: Smallest part S3 accepts, except the last.
PART_MIN = 5 << 20
#: Largest part S3 accepts.
PART_MAX = 5 << 30
#: Most parts one upload may have.
MAX_PARTS = 10_000
#: The part size a stream of unknown length starts with.
PART_SIZE = 8 << 20
#: Parts uploading while the next one fills.
MAX_IN_FLIGHT = 1


def part_size_for(number: int, size: int | None) -> int:
    """Return the size of part ``number`` (from 1).

    With a known total, every part has one size, large enough to stay within 10,000
    parts. Without one, parts start at 8 MiB and grow by 8 MiB every 1,000 parts, so a
    stream may reach about 430 GiB before it runs out of part numbers.
    """
    if size is not None:
        needed = -(-size // MAX_PARTS)
        rounded = -(-needed // (1 << 20)) << 20
        return min(max(PART_SIZE, rounded), PART_MAX)
    return PART_SIZE * (1 + (number - 1) // 1000)


@dataclass
class Upload:
    """What a streaming write needs from the store: one callable per S3 request.

    ``submit`` schedules a coroutine on the client's event loop and returns its future;
    the others are blocking calls.
    """

    put: Callable[[bytes], dict[str, Any]]
    create: Callable[[], str]
    upload_part: Callable[[str, int, bytes], Awaitable[dict[str, Any]]]
    complete: Callable[[str, list[dict[str, Any]]], dict[str, Any]]
    abort: Callable[[str], None]
    submit: Callable[[Awaitable[dict[str, Any]]], Future[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Result:
    """What a finished write reports."""

    response: dict[str, Any]
    length: int
    parts: int


def stream(
    op: str,
    path: str,
    chunks: Iterable[bytes | bytearray | memoryview],
    upload: Upload,
    *,
    size: int | None,
    content_md5: str | None,
) -> Result:
    """Write ``chunks`` as one object: a single PUT if they fit one part, else multipart.

    A multipart upload that fails for any reason, including the data's length differing
    from ``size`` or its MD5 from ``content_md5``, is aborted: nothing becomes visible.
    """
    md5 = hashlib.md5() if content_md5 is not None else None
    buffer = bytearray()
    total = 0
    upload_id: str | None = None
    number = 0
    parts: list[dict[str, Any]] = []
    in_flight: deque[tuple[int, Future[dict[str, Any]]]] = deque()

    def settle(keep: int) -> None:
        while len(in_flight) > keep:
            part_number, future = in_flight.popleft()
            response = future.result()
            parts.append({"PartNumber": part_number, "ETag": response["ETag"]})

    def send(body: bytes) -> None:
        nonlocal upload_id, number
        if upload_id is None:
            upload_id = upload.create()
        number += 1
        if number > MAX_PARTS:
            raise InvalidArgumentError(op, "s3", path, "data needs more than 10,000 parts")
        settle(MAX_IN_FLIGHT - 1)
        in_flight.append((number, upload.submit(upload.upload_part(upload_id, number, body))))

    try:
        for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            total += len(chunk) if not isinstance(chunk, memoryview) else chunk.nbytes
            buffer += chunk
            while len(buffer) >= part_size_for(number + 1, size):
                # One copy into an immutable part (the transport may copy a bytearray
                # again); deleting from the front of a bytearray does not move the rest.
                cut = part_size_for(number + 1, size)
                with memoryview(buffer) as view:
                    part = bytes(view[:cut])
                del buffer[:cut]
                send(part)
                del part
        if md5 is not None and content_md5 is not None:
            actual = base64.b64encode(md5.digest()).decode()
            if actual != content_md5:
                raise InvalidArgumentError(
                    op, "s3", path, "content_md5 does not match the data; nothing was written"
                )
        if upload_id is None:
            return Result(upload.put(bytes(buffer)), total, 0)
        if buffer:
            send(bytes(buffer))
            buffer.clear()
        settle(0)
        return Result(upload.complete(upload_id, parts), total, len(parts))
    except BaseException:
        for _, future in in_flight:
            future.cancel()
        for _, future in in_flight:
            if not future.cancelled():
                # Wait for it to end; the first error is the one raised.
                with contextlib.suppress(BaseException):
                    future.result()
        if upload_id is not None:
            upload.abort(upload_id)
        raise
