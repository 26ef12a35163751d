"""Write data given again to each attempt: Retry's ``replayable`` rule, async sources too.

AsyncRetry and AsyncFailover may run a write more than once, so each attempt needs
the data from its start. The sync rule (``storager.combinators._base.replayable``),
for every source: bytes are given as they are and a seekable sync file is rewound
(an async file, whose ``seek`` is a coroutine, is not); any other source (a sync
stream, an async iterable, an async file) is read up to the limit, a sync one a chunk
at a time on a worker thread (``async_chunks``: it may block, and a cancellation
stops it at the next chunk). A shorter one is given to each attempt as a new async
iterator over the buffered chunks, so the store below still sees an async source (a
threaded view still pulls it a chunk at a time and can abandon it); a longer one
cannot be replayed and gets one attempt, the buffered chunks followed by the rest.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable

from storager._async_types import AsyncWriteData
from storager.aio._native import Chunk, _is_async, async_chunks
from storager.combinators._base import rewinder

__all__ = ["replayable_async"]


async def replayable_async(
    op: str, service: str, path: str, data: AsyncWriteData, limit: int
) -> tuple[Callable[[], AsyncWriteData], bool]:
    """Return a factory that gives ``data`` again for each attempt, and whether it can.

    See the module docstring. Errors of the caller's own source surface here, before
    any attempt, as they would from the first one.
    """
    if not _is_async(data):  # an async file may have a seek too: it is not rewound
        at_hand = rewinder(data)
        if at_hand is not None:
            return at_hand, True
    # A sync stream may block (a pipe, a socket): async_chunks pulls it a chunk at a time
    # on a worker thread, so a cancellation stops the buffering at the next chunk.
    chunks = async_chunks(op, service, path, data)
    buffered: list[bytes] = []
    total = 0
    async for chunk in chunks:
        buffered.append(bytes(chunk))
        total += len(buffered[-1])
        if total > limit:
            break
    else:
        return (lambda: _again(buffered)), True
    rest = _chain(buffered, chunks)
    return (lambda: rest), False


async def _again(buffered: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in buffered:
        yield chunk


async def _chain(buffered: list[bytes], rest: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    # Each buffered chunk is let go once yielded: a long source holds nothing given.
    queue = collections.deque(buffered)
    buffered.clear()
    while queue:
        yield queue.popleft()
    async for piece in rest:
        yield bytes(piece)
