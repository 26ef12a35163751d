"""The streaming writer: a write's data cut into chunks, sent a bounded batch at a time.

Data that ends within ``inline_limit`` bytes goes into the manifest itself (no chunk,
one round trip). Anything longer is cut into ``chunk_size`` chunks of a new generation:
the generation is registered first (with a bound on its chunk count), then each batch
of chunks is sent as one pipeline after a heartbeat that keeps the registration fresh
and raises the bound, so at most one batch is in flight and in memory, and a crash at
any point leaves only chunks that the registration accounts for. Nothing is visible
until the store commits the manifest.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from storager.services.redis._keys import Keys
from storager.services.redis._link import Link
from storager.services.redis._scripts import Scripts
from storager.services.redis._sweep import Sweeper

__all__ = ["Body", "ChunkSwept", "small_body", "write_body"]

#: At most this many bytes of chunks in flight per batch.
BATCH_BYTES = 8 << 20

Chunk = bytes | bytearray | memoryview


class ChunkSwept(Exception):
    """The write's generation was swept: the writer paused longer than the grace."""


@dataclass(slots=True)
class Body:
    """A write's data as stored: inline bytes or a generation of chunks.

    Attributes:
        size: The length in bytes.
        md5: The MD5 digest of the data when one was asked for.
        inline: The bytes, when small enough to live in the manifest.
        generation: The generation holding the chunks, otherwise.
        chunks: How many chunks.
    """

    size: int
    md5: bytes | None
    inline: Chunk | None
    generation: bytes | None
    chunks: int


def small_body(data: object, inline_limit: int, *, want_md5: bool) -> Body | None:
    """Return the Body of bytes-like ``data`` that fits inline, without a copy; else None.

    The common case of a small write skips the streaming machinery entirely.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    if len(view) > inline_limit:
        return None
    md5 = hashlib.md5(view, usedforsecurity=False).digest() if want_md5 else None
    return Body(len(view), md5, view, None, 0)


def _fixed_chunks(source: Iterable[Chunk], chunk_size: int) -> Iterator[Chunk]:
    """Yield the data in pieces of exactly ``chunk_size`` bytes (the last may be shorter).

    Large pieces of the source are sliced without a copy; small ones are gathered.
    """
    buffer = bytearray()
    for piece in source:
        view = memoryview(piece).cast("B")
        if buffer:
            take = chunk_size - len(buffer)
            buffer += view[:take]
            view = view[take:]
            if len(buffer) < chunk_size:
                continue
            yield bytes(buffer)
            buffer = bytearray()
        while len(view) >= chunk_size:
            yield view[:chunk_size]
            view = view[chunk_size:]
        if len(view):
            buffer += view
    if buffer:
        yield bytes(buffer)


def write_body(
    link: Link,
    keys: Keys,
    sweeper: Sweeper,
    source: Iterable[Chunk],
    *,
    chunk_size: int,
    inline_limit: int,
    want_md5: bool,
) -> Body:
    """Store the data of ``source`` and return where it is; the caller commits it.

    On any failure (the source's own included) the chunks sent so far are discarded
    before the exception goes on.

    Raises:
        ChunkSwept: The write paused so long that its generation was swept.
    """
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    chunks = _fixed_chunks(source, chunk_size)
    first = next(chunks, b"")
    second = next(chunks, None) if len(first) == chunk_size else None
    if second is None and len(first) <= inline_limit:
        if md5 is not None:
            md5.update(first)
        return Body(len(first), md5.digest() if md5 else None, first, None, 0)

    generation = secrets.token_hex(16).encode()
    per_batch = max(1, min(64, BATCH_BYTES // chunk_size))
    sent = 0
    size = 0
    try:
        batch: list[Chunk] = [first] if second is None else [first, second]
        rest = iter(chunks)
        while batch:
            for chunk in rest:
                batch.append(chunk)
                if len(batch) >= per_batch:
                    break
            alive = Scripts.heartbeat(
                link,
                [keys.pending, keys.chunk_counts],
                [generation, sent + len(batch), b"1" if sent == 0 else b"0"],
            )
            if not alive:
                raise ChunkSwept()
            commands = []
            for chunk in batch:
                commands.append(("SET", keys.chunk(generation, sent), chunk))
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
                sent += 1
            link.pipeline(commands)
            del commands
            batch = []
            for chunk in rest:
                batch.append(chunk)
                break
    except BaseException:
        sweeper.discard(generation, sent + per_batch)
        raise
    return Body(size, md5.digest() if md5 else None, None, generation, sent)
