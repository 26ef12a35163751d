"""Ranged reads of a chunked object: GET or GETRANGE on only the chunks a range touches.

A read works on the generation its manifest named when it started, which stays intact
while that manifest (or a copy) uses it and for the sweep's grace period after. A chunk
that comes back short means the generation was swept under a slow reader: the read
fails with :class:`ChunkMissing` rather than return a mix.
"""

from __future__ import annotations

from storager.services.redis._keys import Keys
from storager.services.redis._link import Command, Link

__all__ = ["ChunkMissing", "read_chunks"]

#: At most this many chunk requests per pipeline.
_CHUNKS_PER_PIPELINE = 16


class ChunkMissing(Exception):
    """A chunk of the generation being read is gone (swept after a replacement)."""


def read_chunks(
    link: Link,
    keys: Keys,
    generation: bytes,
    chunk_size: int,
    total: int,
    start: int,
    length: int,
) -> bytes:
    """Return ``length`` bytes from ``start`` of a chunked object of ``total`` bytes.

    Args:
        link: The link to Redis.
        keys: The namespace's keys.
        generation: The generation holding the object's chunks.
        chunk_size: The size of each chunk but the last.
        total: The object's size.
        start: Where the range starts (within the object).
        length: How many bytes (the range ends within the object).

    Raises:
        ChunkMissing: A chunk is missing or shorter than the manifest says.
    """
    if length <= 0:
        return b""
    size = chunk_size
    end = start + length
    first, last = start // size, (end - 1) // size
    out = bytearray()
    for batch_start in range(first, last + 1, _CHUNKS_PER_PIPELINE):
        numbers = range(batch_start, min(last + 1, batch_start + _CHUNKS_PER_PIPELINE))
        commands: list[Command] = []
        wanted = []
        for number in numbers:
            chunk_start = number * size
            low = max(start, chunk_start) - chunk_start
            high = min(end, chunk_start + size) - chunk_start
            key = keys.chunk(generation, number)
            whole = min(size, total - chunk_start)
            if low == 0 and high == whole:
                commands.append(("GET", key))
            else:
                commands.append(("GETRANGE", key, low, high - 1))
            wanted.append(high - low)
        for data, want in zip(link.pipeline(commands), wanted, strict=True):
            if data is None or len(data) != want:
                raise ChunkMissing()
            out += data
    return bytes(out)
