"""The native async s3 path's streaming uploader: ``_upload.upload`` on the event loop.

The same rules as the sync uploader, and its part sizes (``_upload.part_size``): a single
PUT when the data fits the first part, else a multipart upload holding the part being
filled plus at most ``in_flight`` parts uploading (as tasks), so memory is bounded
whatever the object's size. The upload completes only after the data has been read to
its end and checked (length, MD5): a write that fails or is cancelled before that is
aborted, and nothing becomes visible.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Mapping

from storager._errors import InvalidArgumentError
from storager.services.s3._async_transport import AsyncTransport
from storager.services.s3._upload import MAX_PARTS, part_size

__all__ = ["upload"]


async def upload(
    transport: AsyncTransport,
    op: str,
    path: str,
    key: str,
    chunks: AsyncIterator[bytes | bytearray | memoryview],
    *,
    headers: Mapping[str, str],
    conditions: Mapping[str, str],
    in_flight: int,
    size: int | None,
    content_md5: str | None,
) -> tuple[str | None, int]:
    """Write ``chunks`` as the object ``key``; return its ETag and length.

    The arguments are those of ``_upload.upload`` (the executor aside: parts upload as
    tasks of the running loop).
    """
    md5 = hashlib.md5() if content_md5 is not None else None
    buffer = bytearray()
    total = 0
    upload_id: str | None = None
    number = 0
    parts: list[tuple[int, str]] = []
    pending: deque[tuple[int, asyncio.Task[str]]] = deque()

    async def settle(keep: int) -> None:
        while len(pending) > keep:
            part_number, task = pending[0]
            etag = await task
            pending.popleft()
            parts.append((part_number, etag))

    async def send(body: bytearray) -> None:
        nonlocal upload_id, number
        if upload_id is None:
            upload_id = await transport.create_multipart(op, path, key, headers)
        number += 1
        if number > MAX_PARTS:
            raise InvalidArgumentError(op, "s3", path, "data needs more than 10,000 parts")
        await settle(in_flight - 1)
        task = asyncio.ensure_future(transport.upload_part(op, path, key, upload_id, number, body))
        pending.append((number, task))

    try:
        async for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            total += chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
            buffer += chunk
            cut = part_size(number + 1, size)
            while len(buffer) >= cut:
                # The buffer itself becomes the part; only the overshoot is copied.
                part, buffer = buffer, buffer[cut:]
                del part[cut:]
                await send(part)
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
            return await transport.put(op, path, key, buffer, single), total
        if buffer:
            await send(buffer)
            buffer = bytearray()
        await settle(0)
        etag = await transport.complete_multipart(op, path, key, upload_id, parts, conditions)
        return etag, total
    except BaseException:
        for _, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
        if upload_id is not None:
            with contextlib.suppress(Exception):  # the first error is the one raised
                await transport.abort_multipart(op, path, key, upload_id)
        raise
