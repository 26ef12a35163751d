"""Async storager: the async protocols, and the async view of any sync store.

>>> import asyncio, storager
>>> async def main() -> bytes:
...     store = storager.open_async("memory://")
...     await store.write("a.txt", b"hi")
...     return await store.read("a.txt")
>>> asyncio.run(main())
b'hi'

See docs/async.md.
"""

from storager._async_protocols import (
    AsyncAppender,
    AsyncCopier,
    AsyncDirer,
    AsyncLinker,
    AsyncMover,
    AsyncPresigner,
    AsyncSegmenter,
    AsyncStorager,
)
from storager._async_types import AsyncReader, AsyncWriteData
from storager.aio._bridge import DEFAULT_THREADS
from storager.aio._loop_local import LoopLocal
from storager.aio._native import (
    NativeAppender,
    NativeAsync,
    NativeCopier,
    NativeDirer,
    NativeMover,
    async_chunks,
)
from storager.aio._range_reader import RangeAsyncReader
from storager.aio._view import AsyncView, async_view, open_async

__all__ = [
    "DEFAULT_THREADS",
    "AsyncAppender",
    "AsyncCopier",
    "AsyncDirer",
    "AsyncLinker",
    "AsyncMover",
    "AsyncPresigner",
    "AsyncReader",
    "AsyncSegmenter",
    "AsyncStorager",
    "AsyncView",
    "AsyncWriteData",
    "LoopLocal",
    "NativeAppender",
    "NativeAsync",
    "NativeCopier",
    "NativeDirer",
    "NativeMover",
    "RangeAsyncReader",
    "async_chunks",
    "async_view",
    "open_async",
]
