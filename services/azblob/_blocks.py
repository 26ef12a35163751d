"""Block uploads with bounded memory, and appends in append-block-sized pieces.

A write of unknown length is cut into blocks of ``block_size`` bytes; each is staged
(Put Block) while the next is read, with at most ``window`` blocks staged at once, and
the block list is committed (Put Block List) at the end, when the object becomes
visible whole. Data no longer than one block goes in a single Put Blob. Staged blocks
that are never committed stay invisible and Azure drops them, so a write that fails
halfway (a broken source, a ``size`` mismatch) leaves any existing object untouched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobType, ContentSettings
from azure.storage.blob.aio import BlobClient

__all__ = ["APPEND_BLOCK_MAX", "Chunk", "Uploaded", "apieces", "pieces", "run", "submit", "upload"]

T = TypeVar("T")

#: The largest block an Append Block takes (older service versions, Azurite).
APPEND_BLOCK_MAX = 4 << 20

Chunk = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Uploaded:
    """What a finished upload reports."""

    length: int
    etag: str | None
    last_modified: datetime | None
    blocks: int


class _Regroup:
    """Cut chunks into pieces of exactly ``size`` bytes; see :func:`pieces`."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._gathered: list[bytes | memoryview] = []
        self._held = 0

    def push(self, chunk: Chunk) -> Iterator[bytes | memoryview]:
        """Take ``chunk``; yield the pieces it completes."""
        size = self._size
        view = memoryview(chunk).cast("B")
        zero_copy = isinstance(chunk, bytes)
        if self._gathered:
            take = min(size - self._held, len(view))
            self._gathered.append(view[:take] if zero_copy else bytes(view[:take]))
            self._held += take
            view = view[take:]
            if self._held < size:
                return
            yield b"".join(self._gathered)
            self._gathered, self._held = [], 0
        while len(view) >= size:
            yield view[:size] if zero_copy else bytes(view[:size])
            view = view[size:]
        if len(view):
            self._gathered.append(view if zero_copy else bytes(view))
            self._held = len(view)

    def rest(self) -> bytes | None:
        """Return the last, shorter piece, if any."""
        return b"".join(self._gathered) if self._gathered else None


def pieces(chunks: Iterable[Chunk], size: int) -> Iterator[bytes | memoryview]:
    """Regroup ``chunks`` into pieces of exactly ``size`` bytes, the last one shorter.

    Immutable ``bytes`` at least ``size`` long are sliced without a copy; smaller or
    mutable chunks are gathered and joined into new ``bytes`` (a caller may reuse a
    mutable buffer once it is yielded), so about ``size`` bytes are held here. Pieces
    are ``bytes`` rather than ``bytearray`` because the HTTP stack copies a
    ``bytearray`` body again when it sends it.
    """
    regroup = _Regroup(size)
    for chunk in chunks:
        yield from regroup.push(chunk)
    last = regroup.rest()
    if last is not None:
        yield last


async def apieces(chunks: AsyncIterator[Chunk], size: int) -> AsyncIterator[bytes | memoryview]:
    """Regroup async ``chunks`` as :func:`pieces` does."""
    regroup = _Regroup(size)
    async for chunk in chunks:
        for piece in regroup.push(chunk):
            yield piece
    last = regroup.rest()
    if last is not None:
        yield last


async def upload(
    blob: BlobClient,
    chunks: AsyncIterator[Chunk],
    *,
    block_size: int,
    window: int,
    content_settings: ContentSettings | None,
    metadata: Mapping[str, str] | None,
) -> Uploaded:
    """Write ``chunks`` to ``blob``, replacing it; see the module docstring.

    Runs on the event loop of ``blob``'s client. Errors from the source or from Azure
    propagate as raised; a cancelled upload cancels the blocks in flight and commits
    nothing.
    """
    meta = dict(metadata) if metadata else None
    parts = apieces(chunks, block_size)
    head: deque[bytes | memoryview] = deque()
    async for piece in parts:
        head.append(piece)
        if len(head) == 2:
            break
    if len(head) < 2:
        piece = head.popleft() if head else b""
        data = piece if isinstance(piece, bytes) else bytes(piece)
        response = await blob.upload_blob(
            data,
            length=len(data),
            overwrite=True,
            content_settings=content_settings,
            metadata=meta,
        )
        return Uploaded(len(data), _etag(response), response.get("last_modified"), 0)

    # Blocks cannot be staged on an append (or page) blob: remove one first.
    try:
        props = await blob.get_blob_properties()
    except ResourceNotFoundError:
        pass
    else:
        if props.blob_type != BlobType.BLOCKBLOB:
            await blob.delete_blob()

    token = secrets.token_hex(12)
    ids: list[str] = []
    length = 0
    pending: deque[asyncio.Future[Any]] = deque()
    try:
        async for piece in _drain(head, parts):
            # Every block id of one blob must have the same length.
            block_id = f"{token}-{len(ids):08d}"
            ids.append(block_id)
            length += len(piece)
            if len(pending) >= window:
                await pending.popleft()
            pending.append(
                asyncio.ensure_future(blob.stage_block(block_id, piece, length=len(piece)))  # type: ignore[arg-type]
            )
        while pending:
            await pending.popleft()
    except BaseException:
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.wait(pending)
        raise
    response = await blob.commit_block_list(
        [BlobBlock(block_id) for block_id in ids],
        content_settings=content_settings,
        metadata=meta,
    )
    modified = response.get("last_modified")
    return Uploaded(
        length, _etag(response), modified if isinstance(modified, datetime) else None, len(ids)
    )


async def _drain(
    head: deque[bytes | memoryview], rest: AsyncIterator[bytes | memoryview]
) -> AsyncIterator[bytes | memoryview]:
    """Yield ``head``'s pieces, dropping each reference as it goes, then ``rest``'s."""
    while head:
        yield head.popleft()
    async for piece in rest:
        yield piece


def run(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on ``loop`` (another thread's) and return its result."""
    return submit(loop, awaitable).result()


def submit(
    loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]
) -> concurrent.futures.Future[T]:
    """Start awaiting ``awaitable`` on ``loop``; return a future of its result."""

    async def wrap() -> T:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(wrap(), loop)


def _etag(response: Mapping[str, Any]) -> str | None:
    etag = response.get("etag")
    return None if etag is None else str(etag).strip('"')
