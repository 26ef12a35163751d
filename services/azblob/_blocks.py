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
import itertools
import secrets
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobType, ContentSettings
from azure.storage.blob.aio import BlobClient

__all__ = ["APPEND_BLOCK_MAX", "Uploaded", "pieces", "run", "submit", "upload"]

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


def pieces(chunks: Iterable[Chunk], size: int) -> Iterator[bytes | memoryview]:
    """Regroup ``chunks`` into pieces of exactly ``size`` bytes, the last one shorter.

    Immutable ``bytes`` at least ``size`` long are sliced without a copy; smaller or
    mutable chunks are gathered and joined into new ``bytes`` (a caller may reuse a
    mutable buffer once it is yielded), so about ``size`` bytes are held here. Pieces
    are ``bytes`` rather than ``bytearray`` because the HTTP stack copies a
    ``bytearray`` body again when it sends it.
    """
    gathered: list[bytes | memoryview] = []
    held = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        zero_copy = isinstance(chunk, bytes)
        if gathered:
            take = min(size - held, len(view))
            gathered.append(view[:take] if zero_copy else bytes(view[:take]))
            held += take
            view = view[take:]
            if held < size:
                continue
            yield b"".join(gathered)
            gathered, held = [], 0
        while len(view) >= size:
            yield view[:size] if zero_copy else bytes(view[:size])
            view = view[size:]
        if len(view):
            gathered.append(view if zero_copy else bytes(view))
            held = len(view)
    if gathered:
        yield b"".join(gathered)


def upload(
    loop: asyncio.AbstractEventLoop,
    blob: BlobClient,
    chunks: Iterable[Chunk],
    *,
    block_size: int,
    window: int,
    content_settings: ContentSettings | None,
    metadata: Mapping[str, str] | None,
) -> Uploaded:
    """Write ``chunks`` to ``blob``, replacing it; see the module docstring.

    Runs the SDK's coroutines on ``loop`` (adlfs's event loop thread) and blocks until
    the object is committed. Errors from the source or from Azure propagate as raised.
    """
    meta = dict(metadata) if metadata else None
    parts = pieces(chunks, block_size)
    head = deque(itertools.islice(parts, 2))
    if len(head) < 2:
        piece = head.popleft() if head else b""
        data = piece if isinstance(piece, bytes) else bytes(piece)
        response = run(
            loop,
            blob.upload_blob(
                data,
                length=len(data),
                overwrite=True,
                content_settings=content_settings,
                metadata=meta,
            ),
        )
        return Uploaded(len(data), _etag(response), response.get("last_modified"), 0)

    # Blocks cannot be staged on an append (or page) blob: remove one first.
    try:
        props = run(loop, blob.get_blob_properties())
    except ResourceNotFoundError:
        pass
    else:
        if props.blob_type != BlobType.BLOCKBLOB:
            run(loop, blob.delete_blob())

    token = secrets.token_hex(12)
    ids: list[str] = []
    length = 0
    pending: deque[concurrent.futures.Future[Any]] = deque()
    try:
        for piece in _drain(head, parts):
            # Every block id of one blob must have the same length.
            block_id = f"{token}-{len(ids):08d}"
            ids.append(block_id)
            length += len(piece)
            if len(pending) >= window:
                pending.popleft().result()
            pending.append(
                submit(loop, blob.stage_block(block_id, piece, length=len(piece)))  # type: ignore[arg-type]
            )
        while pending:
            pending.popleft().result()
    except BaseException:
        for future in pending:
            future.cancel()
        concurrent.futures.wait(pending)
        raise
    response = run(
        loop,
        blob.commit_block_list(
            [BlobBlock(block_id) for block_id in ids],
            content_settings=content_settings,
            metadata=meta,
        ),
    )
    return Uploaded(length, _etag(response), response.get("last_modified"), len(ids))


def _drain(
    head: deque[bytes | memoryview], rest: Iterator[bytes | memoryview]
) -> Iterator[bytes | memoryview]:
    """Yield ``head``'s pieces, dropping each reference as it goes, then ``rest``'s."""
    while head:
        yield head.popleft()
    yield from rest


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
