"""Ranged reads of a chunked object: GET or GETRANGE on only the chunks a range touches.

A read works on the generation its manifest named when it started, which stays intact
while that manifest (or a copy) uses it and for the sweep's grace period after. A chunk
that comes back short means the generation was swept under a slow reader: the read
fails with :class:`ChunkMissing` rather than return a mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from storager.services.redis._keys import Keys
from storager.services.redis._link import Command, Link

__all__ = ["ChunkMissing", "ChunkRange", "check_chunks", "read_chunks"]

#: At most this many chunk requests per pipeline.
_CHUNKS_PER_PIPELINE = 16


class ChunkMissing(Exception):
    """A chunk of the generation being read is gone (swept after a replacement)."""


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """Which bytes of a chunked object a read wants, and where its chunks are.

    Attributes:
        keys: The namespace's keys.
        generation: The generation holding the object's chunks.
        chunk_size: The size of each chunk but the last.
        total: The object's size.
        start: Where the range starts (within the object).
        length: How many bytes (the range ends within the object).
    """

    keys: Keys
    generation: bytes
    chunk_size: int
    total: int
    start: int
    length: int

    def batches(self) -> Iterator[tuple[list[Command], list[int]]]:
        """Yield each pipeline of GET/GETRANGE commands and the length each must return."""
        if self.length <= 0:
            return
        size = self.chunk_size
        end = self.start + self.length
        first, last = self.start // size, (end - 1) // size
        for batch_start in range(first, last + 1, _CHUNKS_PER_PIPELINE):
            commands: list[Command] = []
            wanted = []
            for number in range(batch_start, min(last + 1, batch_start + _CHUNKS_PER_PIPELINE)):
                chunk_start = number * size
                low = max(self.start, chunk_start) - chunk_start
                high = min(end, chunk_start + size) - chunk_start
                key = self.keys.chunk(self.generation, number)
                if low == 0 and high == min(size, self.total - chunk_start):
                    commands.append(("GET", key))
                else:
                    commands.append(("GETRANGE", key, low, high - 1))
                wanted.append(high - low)
            yield commands, wanted


def check_chunks(out: bytearray, replies: list[bytes | None], wanted: list[int]) -> None:
    """Append one pipeline's chunks to ``out``.

    Raises:
        ChunkMissing: A chunk is missing or shorter than the manifest says.
    """
    for data, want in zip(replies, wanted, strict=True):
        if data is None or len(data) != want:
            raise ChunkMissing()
        out += data


def read_chunks(link: Link, chunks: ChunkRange) -> bytes:
    """Return the bytes ``chunks`` describes, a pipeline of chunks at a time.

    Raises:
        ChunkMissing: A chunk is missing or shorter than the manifest says.
    """
    out = bytearray()
    for commands, wanted in chunks.batches():
        check_chunks(out, link.pipeline(commands), wanted)
    return bytes(out)
