"""AsyncRetry and AsyncFailover give a write's async source again to the next attempt.

The sync rule (``storager.combinators._base.replayable``), for async sources too: a
source of at most ``buffer_limit`` bytes is buffered and given whole to each attempt;
a longer one gets one attempt.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import pytest

from storager import AsyncSegmenter, AsyncStorager, NotFoundError, ServiceInternalError
from storager._async_types import AsyncWriteData
from storager._object import Multipart, Object, Part
from storager.aio import async_chunks
from storager.aio.combinators import AsyncDelegate, AsyncFailover, AsyncRetry
from storager.combinators import RetryPolicy
from storager.services.memory import MemoryStorage
from storager.testing import FaultyStorager

DATA = b"abcdefghijklmnopqrstuvwxyz"


class _Source:
    """An async source of DATA in small pieces that counts how often it is read."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pulls = 0
        self._file = io.BytesIO(DATA)

    async def _pieces(self) -> AsyncIterator[bytes]:
        for start in range(0, len(DATA), 4):
            await asyncio.sleep(0)
            self.pulls += 1
            yield DATA[start : start + 4]

    async def _read(self, size: int = -1) -> bytes:
        await asyncio.sleep(0)
        self.pulls += 1
        return self._file.read(min(size, 4) if size > 0 else 4)

    def data(self) -> AsyncWriteData:
        return self._pieces() if self.kind == "async iterator" else _AsyncFile(self)


class _AsyncFile:
    """An object with an async ``read``, as aiofiles gives."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    async def read(self, size: int = -1) -> bytes:
        return await self._source._read(size)


@pytest.fixture(params=["async iterator", "async file"])
def source(request: pytest.FixtureRequest) -> _Source:
    return _Source(request.param)


def _flaky(cut: int = 6) -> FaultyStorager:
    """A memory store whose writes read ``cut`` bytes of their data, then fail."""
    return FaultyStorager(MemoryStorage(), fail_after_bytes=cut)


def test_retry_gives_a_short_async_source_whole_to_the_second_attempt(source: _Source) -> None:
    faulty = _flaky()

    async def heal(seconds: float) -> None:
        faulty.heal()  # the first attempt failed after reading 6 bytes; the next one works

    store = AsyncRetry(faulty.aio, RetryPolicy(max_attempts=3), sleep=heal)
    obj = asyncio.run(store.write("a.bin", source.data()))
    assert obj.content_length == len(DATA)
    assert faulty.inner.read("a.bin") == DATA  # type: ignore[attr-defined]
    assert faulty.calls["write"] == 2 and store.retries == 1
    assert source.pulls == 7 + (source.kind == "async file")  # read once, to its end


def test_retry_writes_a_longer_async_source_once(source: _Source) -> None:
    faulty = _flaky()
    store = AsyncRetry(faulty.aio, RetryPolicy(max_attempts=3, buffer_limit=8))
    with pytest.raises(ServiceInternalError) as caught:
        asyncio.run(store.write("a.bin", source.data()))
    assert "buffer_limit=8" in " ".join(caught.value.__notes__)
    assert faulty.calls["write"] == 1 and store.retries == 0
    with pytest.raises(NotFoundError):
        faulty.inner.stat("a.bin")  # type: ignore[attr-defined]

    faulty.heal()  # without a fault, the buffered head and the rest make the whole object
    asyncio.run(store.write("b.bin", _Source(source.kind).data()))
    assert faulty.inner.read("b.bin") == DATA  # type: ignore[attr-defined]


def test_failover_gives_a_short_async_source_whole_to_the_alternative(source: _Source) -> None:
    primary, backup = _flaky(), MemoryStorage()
    store = AsyncFailover(primary.aio, backup.aio)
    asyncio.run(store.write("a.bin", source.data()))
    assert backup.read("a.bin") == DATA
    assert store.active == "alternative1" and primary.calls["write"] == 1
    with pytest.raises(NotFoundError):
        primary.inner.stat("a.bin")  # type: ignore[attr-defined]


def test_failover_writes_a_longer_async_source_on_one_store(source: _Source) -> None:
    primary, backup = _flaky(), MemoryStorage()
    store = AsyncFailover(primary.aio, backup.aio, buffer_limit=8)
    with pytest.raises(ServiceInternalError):
        asyncio.run(store.write("a.bin", source.data()))
    with pytest.raises(NotFoundError):
        backup.stat("a.bin")


class _DropsFirstPart(AsyncDelegate, AsyncSegmenter):
    """Reads the first part's data to its end, then fails as a lost answer would."""

    @classmethod
    def _allowed_capabilities(cls, *args: Any, **kwargs: Any) -> frozenset[type]:
        return frozenset()  # this class is the Segmenter itself, no mixin

    dropped = False

    @property
    def _segments(self) -> AsyncSegmenter:
        return cast(AsyncSegmenter, self._inner)

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        return await self._segments.create_multipart(path, **pairs)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        if not self.dropped:
            self.dropped = True
            async for _ in async_chunks("write_multipart", "test", multipart.path, data):
                pass
            raise ServiceInternalError("write_multipart", "test", multipart.path, "answer lost")
        return await self._segments.write_multipart(multipart, number, data, **pairs)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        return await self._segments.complete_multipart(multipart, parts, **pairs)

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        await self._segments.abort_multipart(multipart, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        return self._segments.list_multipart(multipart, **pairs)


def _sync_pieces() -> Iterator[bytes]:
    for start in range(0, len(DATA), 4):
        yield DATA[start : start + 4]


@pytest.mark.parametrize("kind", ["async iterator", "sync iterator"])
def test_retry_gives_a_part_whole_to_the_second_attempt(kind: str) -> None:
    memory = MemoryStorage()
    store = AsyncRetry(_DropsFirstPart(memory.aio), sleep=lambda _: asyncio.sleep(0))
    assert isinstance(store, AsyncSegmenter)
    data = _Source(kind).data() if kind == "async iterator" else _sync_pieces()

    async def main(target: AsyncStorager) -> None:
        segments = cast(AsyncSegmenter, target)
        upload = await segments.create_multipart("big.bin")
        part = await segments.write_multipart(upload, 1, data)
        await segments.complete_multipart(upload, [part])

    asyncio.run(main(store))
    assert memory.read("big.bin") == DATA and store.retries == 1


def test_retry_buffers_a_blocking_sync_stream_off_the_loop() -> None:
    def slow_pieces() -> Iterator[bytes]:
        for piece in (b"ab", b"cd", b"ef"):
            time.sleep(0.1)  # a pipe or a socket that makes the reader wait
            yield piece

    store = AsyncRetry(MemoryStorage().aio)  # memory runs inline: only the buffering may block

    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        await store.write("slow.bin", slow_pieces())
        ticker.cancel()
        assert await store.read("slow.bin") == b"abcdef"
        return ticks

    assert asyncio.run(main()) >= 10  # the loop ran on for the 0.3 s the stream took


class _SeekingAsyncFile:
    """An async file as aiofiles gives it: read, seek, seekable and tell are coroutines."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    async def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    async def seekable(self) -> bool:
        return True

    async def tell(self) -> int:
        return self._file.tell()


def test_an_async_file_with_a_seek_is_buffered_not_rewound() -> None:
    """Its seek is a coroutine: calling it without awaiting would rewind nothing."""
    data = bytes(range(256)) * 40
    faulty = FaultyStorager(MemoryStorage(), fail_after_bytes=100)

    async def heal(seconds: float) -> None:
        faulty.heal()

    store = AsyncRetry(faulty.aio, RetryPolicy(max_attempts=3), sleep=heal)
    obj = asyncio.run(store.write("a.bin", cast(Any, _SeekingAsyncFile(data))))
    assert obj.content_length == len(data) and store.retries == 1
    assert faulty.inner.read("a.bin") == data  # type: ignore[attr-defined]
    primary, backup = FaultyStorager(MemoryStorage(), fail_after_bytes=100), MemoryStorage()
    asyncio.run(
        AsyncFailover(primary.aio, backup.aio).write("b.bin", cast(Any, _SeekingAsyncFile(data)))
    )
    assert backup.read("b.bin") == data


def test_a_cancelled_write_stops_buffering_a_sync_stream() -> None:
    pulled: list[int] = []

    def slow() -> Iterator[bytes]:
        for i in range(30):
            time.sleep(0.03)
            pulled.append(i)
            yield b"x" * 100

    store = AsyncRetry(MemoryStorage().aio, RetryPolicy(max_attempts=3))

    async def main() -> tuple[int, int]:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.write("a.bin", slow()), 0.2)
        at_cancel = len(pulled)
        await asyncio.sleep(0.3)
        return at_cancel, len(pulled)

    at_cancel, later = asyncio.run(main())
    assert at_cancel < 30
    assert later <= at_cancel + 1  # at most the chunk in hand when it was cancelled
