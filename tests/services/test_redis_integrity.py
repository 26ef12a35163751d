"""The redis service against a real redis-server: what it stores is what the caller gave
at the time (a source may refill one buffer for every piece), the tags it makes without
the content's MD5 never look like one, and a cancelled async call loses no connection."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import storager
from storager._etag import plain_md5
from storager.services.redis import RedisStorage
from storager.services.redis._async import AsyncServerLink
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.redis

CHUNK = 1 << 10


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStorage]:
    """A store in a fresh namespace with 1 KiB chunks, so a batch holds many of them."""
    opened = storager.open(
        redis_server.url(),
        namespace=f"t-{secrets.token_hex(4)}",
        chunk_size=CHUNK,
        inline_limit=CHUNK,
    )
    assert isinstance(opened, RedisStorage)
    yield opened
    opened.close()


def _pieces(size: int, count: int) -> list[bytes]:
    """``count`` distinct pieces of ``size`` bytes."""
    return [bytes([65 + index % 26]) * size for index in range(count)]


@pytest.mark.parametrize("size", [CHUNK, CHUNK // 2, CHUNK * 3 + 7])
@pytest.mark.parametrize("as_view", [False, True])
def test_a_source_that_refills_one_buffer_is_stored_as_given(
    store: RedisStorage, size: int, as_view: bool
) -> None:
    pieces = _pieces(size, 9)

    def source() -> Iterator[bytearray | memoryview]:
        buffer = bytearray(size)
        for piece in pieces:
            buffer[:] = piece
            yield memoryview(buffer) if as_view else buffer

    store.write("refilled.bin", source())
    assert store.read("refilled.bin") == b"".join(pieces)


@pytest.mark.parametrize("size", [CHUNK, CHUNK * 3 + 7])
def test_an_async_source_that_refills_one_buffer_is_stored_as_given(
    store: RedisStorage, size: int
) -> None:
    pieces = _pieces(size, 9)

    async def source() -> AsyncIterator[bytearray]:
        buffer = bytearray(size)
        for piece in pieces:
            buffer[:] = piece
            yield buffer

    async def go() -> bytes:
        await store.aio.write("refilled.bin", source())
        return await store.aio.read("refilled.bin")

    assert asyncio.run(go()) == b"".join(pieces)


def test_copies_moves_and_directories_carry_no_md5_looking_etag(store: RedisStorage) -> None:
    store.write("a.txt", b"one")
    store.copy("a.txt", "b.txt")
    store.move("b.txt", "c.txt")
    made = store.create_dir("d")
    for path in ("a.txt", "c.txt", "d/"):
        etag = store.stat(path).etag
        assert etag, path
        assert plain_md5(etag) is None, (path, etag)
    assert made.etag is None or plain_md5(made.etag) is None

    async def go() -> list[str | None]:
        await store.aio.copy("a.txt", "e.txt")
        await store.aio.move("e.txt", "f.txt")
        await store.aio.create_dir("g")
        return [(await store.aio.stat(path)).etag for path in ("f.txt", "g/")]

    for etag in asyncio.run(go()):
        assert etag
        assert plain_md5(etag) is None, etag


def test_a_call_cancelled_while_checking_its_connection_keeps_it(store: RedisStorage) -> None:
    async def go() -> tuple[int, int, bool]:
        link = await store.aio._link()
        assert isinstance(link, AsyncServerLink)
        await link.call("PING")  # one connection, idle again
        assert len(link._idle) == 1
        connection = link._idle[0]
        checking = asyncio.Event()

        async def stuck_can_read(*args: Any, **kwargs: Any) -> bool:
            checking.set()
            await asyncio.sleep(30)
            return False

        connection.can_read = stuck_can_read
        call = asyncio.create_task(link.call("PING"))
        await asyncio.wait_for(checking.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        del connection.can_read
        idle_after, known = len(link._idle), len(link._all)
        reply = await link.call("PING")  # and the lane still works
        return idle_after, known, reply in (b"PONG", "PONG", True)

    idle_after, known, answered = asyncio.run(go())
    assert (idle_after, known) == (1, 1)
    assert answered
