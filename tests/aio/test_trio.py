"""The async view under trio: sync-native stores (memory, fs, sftp) work from trio too.

The view's calls run on its own bounded thread pool whatever the async library; under
trio anyio's primitives do the waiting and pull async data from the writing thread
(``storager.aio._other_loop``). Each test runs its coroutine with ``trio.run``.
"""

from __future__ import annotations

import io
import secrets
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

import storager
from storager import NotFoundError, Storager
from storager.aio import async_view
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from tests.servers.sshd import SSHDServer
from tests.services.test_sftp import sftp_url


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive()}


async def _exercise(store: Storager) -> None:
    """Every kind of call and data source the view bridges, awaited under trio."""
    view = async_view(store)
    try:
        await view.write("a.txt", b"hello")
        assert await view.read("a.txt") == b"hello"
        assert (await view.stat("a.txt")).content_length == 5

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b"ab", b"cd", b"ef"):
                await trio.sleep(0)
                yield part

        await view.write("async.bin", chunks())  # pulled from the writing thread
        await view.write("file.bin", io.BytesIO(b"x" * 100_000))  # a sync file, on the pool
        assert await view.read("async.bin") == b"abcdef"
        assert await view.read("file.bin", offset=99_990) == b"x" * 10
        assert sorted([o.path async for o in view.list("")]) == [
            "a.txt",
            "async.bin",
            "file.bin",
        ]
        async with await view.open_reader("async.bin") as reader:
            assert await reader.read(2) == b"ab"
            assert await reader.read() == b"cdef"
        await view.delete("a.txt")
        with pytest.raises(NotFoundError):
            await view.stat("a.txt")

        # Calls from several trio tasks at once share the view's pool.
        async def put(i: int) -> None:
            await view.write(f"many/{i}", str(i).encode())

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(put, i)
        assert len([o async for o in view.list("many/")]) == 20
    finally:
        await view.close()


def test_memory_under_trio() -> None:
    trio.run(_exercise, MemoryStorage())


def test_fs_under_trio_leaves_no_thread_behind(tmp_path: Path) -> None:
    before = _threads()
    trio.run(_exercise, FsStorage(root=str(tmp_path)))
    assert not {n for n in _threads() - before if n.startswith("storager-aio")}


def test_one_view_from_trio_then_asyncio(tmp_path: Path) -> None:
    import asyncio

    view = async_view(FsStorage(root=str(tmp_path)))

    async def write(data: bytes) -> None:
        await view.write("k", data)

    trio.run(write, b"from trio")
    assert view.sync.read("k") == b"from trio"
    asyncio.run(write(b"from asyncio"))
    trio.run(write, b"trio again")
    assert view.sync.read("k") == b"trio again"
    trio.run(view.close)


def test_a_cancelled_trio_write_stops_pulling_its_data(tmp_path: Path) -> None:
    store = FsStorage(root=str(tmp_path))
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            await trio.sleep(0.01)
            yield b"x" * 1024

    async def main() -> None:
        view = async_view(store)
        with trio.move_on_after(0.2):
            await view.write("never.bin", endless())
        await view.close()

    trio.run(main)
    assert pulled > 0
    seen = pulled
    time.sleep(0.1)
    assert pulled == seen  # nothing pulls after the cancellation
    with FsStorage(root=str(tmp_path)) as again, pytest.raises(NotFoundError):
        again.stat("never.bin")  # the atomic write was abandoned: nothing landed


@pytest.mark.sftp
def test_sftp_under_trio(sshd_server: SSHDServer) -> None:
    root = sshd_server.root_dir / f"t-{secrets.token_hex(4)}"
    root.mkdir()
    trio.run(_exercise, storager.open(sftp_url(sshd_server, root)))
