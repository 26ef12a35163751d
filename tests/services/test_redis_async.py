"""The redis service's native async twin (redis-py's asyncio client) against a real
redis-server: the async conformance suite on a cluster (tests/aio runs it on a
standalone server), and what the suite does not show: that the twin is native, streams
chunked objects, and leaves nothing behind a refused write."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

import storager
from storager import (
    AlreadyExistsError,
    InvalidArgumentError,
    OperationTimeoutError,
    OutcomeUnknownError,
)
from storager.services.redis import RedisStorage
from storager.services.redis._async import RedisAsync
from storager.testing import AsyncStoragerSuite, url_factory
from tests.servers.redis import RedisCluster, RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStorage]:
    """A store in a fresh namespace, with small chunks so objects span many of them."""
    opened = storager.open(
        redis_server.url(),
        namespace=f"t-{secrets.token_hex(4)}",
        chunk_size=64 << 10,
        inline_limit=4 << 10,
    )
    assert isinstance(opened, RedisStorage)
    yield opened
    opened.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """redis-py on the standalone server, to look behind the service."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


class TestAsyncRedisCluster(AsyncStoragerSuite):
    """The async conformance suite on the native twin over a three-master cluster."""

    @pytest.fixture
    def storager_factory(self, redis_cluster: RedisCluster) -> Any:
        return url_factory(redis_cluster.url())


def test_every_store_has_a_native_twin(store: RedisStorage, redis_cluster: RedisCluster) -> None:
    assert isinstance(store.aio, RedisAsync)
    with storager.open(redis_cluster.url(), namespace=f"t-{secrets.token_hex(4)}") as clustered:
        assert isinstance(clustered.aio, RedisAsync)


def test_chunked_objects_stream_both_ways_from_several_loops(
    store: RedisStorage, raw: redis.Redis
) -> None:
    piece = bytes(range(256)) * 100  # 25,600 bytes: pieces straddle the 64 KiB chunks
    pieces = 41
    expected = piece * pieces

    async def source() -> AsyncIterator[bytes]:
        for _ in range(pieces):
            yield piece

    async def write() -> None:
        obj = await store.aio.write("big.bin", source())
        assert obj.content_length == len(expected)

    async def read_back() -> tuple[bytes, bytes, bytes]:
        whole = await store.aio.read("big.bin")
        ranged = await store.aio.read("big.bin", offset=70_000, size=200_000)
        reader = await store.aio.open_reader("big.bin", offset=1)
        streamed = bytearray()
        while chunk := await reader.read(50_000):
            streamed += chunk
        await reader.close()
        return whole, ranged, bytes(streamed)

    asyncio.run(write())  # one loop writes, another reads: one client per loop
    whole, ranged, streamed = asyncio.run(read_back())
    assert hashlib.sha256(whole).digest() == hashlib.sha256(expected).digest()
    assert ranged == expected[70_000:270_000]
    assert streamed == expected[1:]
    generation = raw.hget(f"{{{store._keys.namespace}}}:m:/big.bin", "gen")
    assert generation  # stored as chunks, not inline
    assert store.read("big.bin") == expected  # and the sync side agrees


def test_refused_async_writes_leave_nothing(store: RedisStorage, raw: redis.Redis) -> None:
    namespace = store._keys.namespace

    async def go() -> None:
        await store.aio.write("a.txt", b"one")

        async def big() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"x" * (64 << 10)

        with pytest.raises(AlreadyExistsError):
            await store.aio.write("a.txt", big(), if_none_match="*")
        with pytest.raises(AlreadyExistsError):
            await store.aio.write("a.txt", b"two", if_none_match="*")
        assert await store.aio.read("a.txt") == b"one"

    asyncio.run(go())
    assert list(raw.scan_iter(match=f"{{{namespace}}}:s:*")) == []
    assert list(raw.scan_iter(match=f"{namespace}:c:*")) == []


def test_async_timeouts_are_outcome_unknown_for_commits_and_retryable_for_reads(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    store = storager.open(redis_server.url(), namespace=f"t-{secrets.token_hex(4)}", timeout=0.3)

    async def go() -> None:
        await store.aio.write("t.txt", b"before")
        raw.client_pause(1000, all=False)  # writes wait, reads go on
        try:
            with pytest.raises(OutcomeUnknownError):
                await store.aio.write("t.txt", b"after")
            assert await store.aio.read("t.txt") == b"before"
        finally:
            raw.client_unpause()
        raw.client_pause(1000, all=True)
        try:
            with pytest.raises(OperationTimeoutError) as timeout:
                await store.aio.stat("t.txt")
            assert timeout.value.retryable
        finally:
            raw.client_unpause()
        await store.aio.close()

    asyncio.run(go())


def test_failed_async_chunked_writes_discard_their_chunks(
    store: RedisStorage, raw: redis.Redis
) -> None:
    """The async twin runs the sync store's write plan: a chunked write refused for its
    MD5, cut short by its source, or failing in its source leaves no chunk behind."""
    namespace = store._keys.namespace
    piece = b"z" * (64 << 10)  # a chunk; a batch is 64 of them, so 70 need two batches

    async def pieces(count: int, fail: bool = False) -> AsyncIterator[bytes]:
        for _ in range(count):
            yield piece
        if fail:
            raise OSError("the source broke")

    async def go() -> None:
        await store.aio.write("kept.bin", pieces(3))
        with pytest.raises(InvalidArgumentError):
            await store.aio.write("kept.bin", pieces(70), content_md5="AAAAAAAAAAAAAAAAAAAAAA==")
        with pytest.raises(InvalidArgumentError):
            await store.aio.write("kept.bin", pieces(70), size=71 * len(piece))
        with pytest.raises(OSError, match="the source broke"):
            await store.aio.write("kept.bin", pieces(70, fail=True))
        assert await store.aio.read("kept.bin") == piece * 3
        digest = base64.b64encode(hashlib.md5(piece * 2).digest()).decode()
        written = await store.aio.write("md5.bin", pieces(2), content_md5=digest)
        assert written.content_md5 == digest

    asyncio.run(go())
    generation = raw.hget(f"{{{namespace}}}:m:/kept.bin", "gen")
    assert generation is not None
    chunks = {key.decode() for key in raw.scan_iter(match=f"{namespace}:c:*")}
    assert all(key.startswith(f"{namespace}:c:") for key in chunks)
    kept = {key for key in chunks if generation.decode() in key}
    md5_generation = raw.hget(f"{{{namespace}}}:m:/md5.bin", "gen")
    assert md5_generation is not None
    assert len(kept) == 3
    assert chunks - kept == {key for key in chunks if md5_generation.decode() in key}
    assert raw.zcard(f"{{{namespace}}}:p") == 0
