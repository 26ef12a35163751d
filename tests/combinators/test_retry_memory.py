"""A stream too long to replay keeps nothing it already gave: Retry's memory is the store's.

Retry (and its async twin) buffers up to ``buffer_limit`` bytes of a one-shot stream
to find out whether it can be given again; a longer stream gets one attempt, the
buffered part first. That part must be let go as it is handed on, or every long
write through Retry holds ``buffer_limit`` bytes more to its end.
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from storager.aio.combinators import AsyncRetry
from storager.combinators import Retry, RetryPolicy
from storager.services.fs import FsStorage

MiB = 1 << 20
LIMIT = 16 * MiB
BASE = os.urandom(MiB)


class _Source:
    """48 chunks of 1 MiB; notes the memory in use when the 40th is asked for."""

    def __init__(self) -> None:
        self.held_late = -1

    def chunks(self) -> Iterator[bytes]:
        for i in range(48):
            if i == 40:  # long past the buffered 16 MiB, which went out first
                self.held_late = tracemalloc.get_traced_memory()[0]
            yield i.to_bytes(4, "big") + BASE[4:]

    async def async_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks():
            yield chunk


def test_retry_lets_go_of_the_buffered_part_of_a_long_stream(tmp_path: Path) -> None:
    store = Retry(FsStorage(root=str(tmp_path)), RetryPolicy(buffer_limit=LIMIT))
    source = _Source()
    tracemalloc.start()
    try:
        store.write("long.bin", source.chunks())
    finally:
        tracemalloc.stop()
    assert store.stat("long.bin").content_length == 48 * MiB
    # Buffering 16 MiB to decide is allowed; holding them while the rest streams is not.
    assert 0 <= source.held_late < 4 * MiB, f"{source.held_late / MiB:.1f} MiB held"


def test_async_retry_lets_go_of_the_buffered_part_of_a_long_source(tmp_path: Path) -> None:
    fs = FsStorage(root=str(tmp_path))
    store = AsyncRetry(fs.aio, RetryPolicy(buffer_limit=LIMIT))

    source = _Source()

    async def write() -> None:
        tracemalloc.start()
        try:
            await store.write("long.bin", source.async_chunks())
        finally:
            tracemalloc.stop()

    asyncio.run(write())
    assert fs.stat("long.bin").content_length == 48 * MiB
    assert 0 <= source.held_late < 4 * MiB, f"{source.held_late / MiB:.1f} MiB held"
