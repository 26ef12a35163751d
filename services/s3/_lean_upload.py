"""The lean path's streaming writes and parallel reads, with bounded memory.

A write holds the part being filled plus at most ``in_flight`` parts uploading on the
store's executor, so memory is ``(in_flight + 1) * part_size`` whatever the object's
size (5 MiB parts, 4 in flight: 25 MiB). A large read fetches ranges in parallel,
``depth`` ahead of the reader, pinned to the object's ETag so no reader mixes two
versions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

from storager._errors import InvalidArgumentError
from storager.services.s3._upload import MAX_PARTS, PART_MAX, PART_MIN

__all__ = ["Prefetcher", "part_size", "upload_stream"]


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


def upload_stream(
    op: str,
    path: str,
    chunks: Iterable[bytes | bytearray | memoryview],
    *,
    put: Callable[[bytes], dict[str, Any]],
    create: Callable[[], str],
    upload_part: Callable[[str, int, bytearray], dict[str, Any]],
    complete: Callable[[str, list[dict[str, Any]]], dict[str, Any]],
    abort: Callable[[str], None],
    executor: Executor,
    in_flight: int,
    size: int | None,
    content_md5: str | None,
) -> tuple[dict[str, Any], int]:
    """Write ``chunks`` as one object: one PUT if they fit a part, else parallel parts.

    Returns the final response and the byte count. A multipart upload that fails for any
    reason (the data's length or MD5 included) is aborted, so nothing becomes visible.
    """
    md5 = hashlib.md5() if content_md5 is not None else None
    buffer = bytearray()
    total = 0
    upload_id: str | None = None
    number = 0
    parts: list[dict[str, Any]] = []
    pending: deque[tuple[int, Future[dict[str, Any]]]] = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep:
            part_number, future = pending.popleft()
            parts.append({"PartNumber": part_number, "ETag": future.result()["ETag"]})

    def send(body: bytearray) -> None:
        nonlocal upload_id, number
        if upload_id is None:
            upload_id = create()
        number += 1
        if number > MAX_PARTS:
            raise InvalidArgumentError(op, "s3", path, "data needs more than 10,000 parts")
        settle(in_flight - 1)
        pending.append((number, executor.submit(upload_part, upload_id, number, body)))

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
            return put(bytes(buffer)), total
        if buffer:
            send(buffer)
            buffer = bytearray()
        settle(0)
        return complete(upload_id, parts), total
    except BaseException:
        for _, future in pending:
            future.cancel()
        for _, future in pending:
            if not future.cancelled():
                with contextlib.suppress(BaseException):
                    future.result()
        if upload_id is not None:
            abort(upload_id)
        raise


class Prefetcher:
    """``fetch(offset, size)`` served from ranged GETs started ahead of the reader.

    The object is fetched in blocks of ``block`` bytes, ``depth`` of them in flight on
    the store's executor, whatever window size the reader asks for (windows are joined
    from, or cut out of, blocks). A request that does not continue where the last one
    ended (a seek) drops what was prefetched and starts again there. Memory: ``depth``
    blocks plus the window being assembled.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes | bytearray],
        executor: Executor,
        *,
        start: int,
        length: int,
        depth: int,
        block: int,
    ) -> None:
        self._fetch = fetch
        self._executor = executor
        self._end = start + length
        self._depth = depth
        self._block = block
        self._next = start
        self._queue: deque[tuple[int, int, Future[bytes | bytearray]]] = deque()
        self._carry: tuple[int, memoryview] | None = None

    def _drop(self) -> None:
        for _, _, future in self._queue:
            future.cancel()
        self._queue.clear()
        self._carry = None

    def _fill(self) -> None:
        while len(self._queue) < self._depth and self._next < self._end:
            n = min(self._block, self._end - self._next)
            self._queue.append((self._next, n, self._executor.submit(self._fetch, self._next, n)))
            self._next += n

    def __call__(self, offset: int, size: int) -> bytes:
        if self._carry is not None:
            expected = self._carry[0]
        elif self._queue:
            expected = self._queue[0][0]
        else:
            expected = self._next
        if offset != expected:
            self._drop()
            self._next = offset
        pieces: list[memoryview] = []
        need = size
        while need > 0:
            if self._carry is not None:
                at, data = self._carry
                self._carry = None
            else:
                self._fill()
                if not self._queue:
                    break
                at, n, future = self._queue.popleft()
                data = memoryview(future.result())
                if len(data) < n:
                    pieces.append(data)
                    self._drop()
                    self._next = at + len(data)
                    break  # the object ended early: give what there is
            if len(data) > need:
                pieces.append(data[:need])
                self._carry = (at + need, data[need:])
                need = 0
            else:
                pieces.append(data)
                need -= len(data)
        window = b"".join(pieces)  # bytes: a raw reader's readall must not return a view
        del pieces
        # Refilled once the window is assembled, so blocks in hand plus blocks in flight
        # never exceed ``depth``.
        self._fill()
        return window

    def close(self) -> None:
        self._drop()
