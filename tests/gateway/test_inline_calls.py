"""Where store calls run: a memory store's quick calls on the event loop's thread (no hop),
any other store's in the gateway's worker threads, streamed bodies always in workers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from storager._object import Object
from storager.gateway import S3App
from storager.gateway._bucket import cannot_block
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from tests.gateway._raw import put_signed, send, signed_headers
from tests.gateway.conftest import ACCESS_KEY, SECRET_KEY, _Served


class _Watched:
    """Records the thread each stat and write of the wrapped store class runs on."""

    calls: list[tuple[str, str]]

    @property
    def threads(self) -> list[str]:
        return [thread for _, thread in self.calls]

    def writes(self) -> list[str]:
        return [thread for op, thread in self.calls if op == "write"]

    def stat(self, path: str, **pairs: Any) -> Object:
        self.calls.append(("stat", threading.current_thread().name))
        return super().stat(path, **pairs)  # type: ignore[misc]

    def write(self, path: str, data: Any, **pairs: Any) -> Object:
        self.calls.append(("write", threading.current_thread().name))
        return super().write(path, data, **pairs)  # type: ignore[misc]


class WatchedMemory(_Watched, MemoryStorage):
    pass


class WatchedFs(_Watched, FsStorage):
    pass


@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[int, WatchedMemory, WatchedFs, list[str]]]:
    memory = WatchedMemory()
    files = WatchedFs(root=str(tmp_path))
    memory.calls, files.calls = [], []
    loop_threads: list[str] = []
    app = S3App({"mem": memory, "files": files}, credentials={ACCESS_KEY: SECRET_KEY})

    async def noting_loop(scope: Any, receive: Any, send: Any) -> None:
        loop_threads.append(threading.current_thread().name)
        await app(scope, receive, send)

    server = _Served(noting_loop, lifespan="off")
    yield server.port, memory, files, loop_threads
    server.stop()
    asyncio.run(app.aclose())
    memory.close()
    files.close()


def test_memory_is_inline_and_other_stores_are_not(tmp_path: Any) -> None:
    assert cannot_block(MemoryStorage())
    assert not cannot_block(FsStorage(root=str(tmp_path)))


def test_memory_calls_run_on_the_loop_and_fs_calls_in_workers(served: Any) -> None:
    port, memory, files, loop_threads = served
    for bucket in ("mem", "files"):
        assert put_signed(port, f"/{bucket}/small", b"tiny").status == 200
        head = signed_headers(port, "HEAD", f"/{bucket}/small", _EMPTY_SHA256)
        assert send(port, "HEAD", f"/{bucket}/small", b"", head).status == 200
    loop = set(loop_threads)
    assert memory.threads and set(memory.threads) <= loop
    assert files.threads and not set(files.threads) & loop
    assert all(name.startswith("storager-gateway") for name in files.threads)


def test_a_streamed_body_is_written_in_a_worker_even_on_memory(served: Any) -> None:
    port, memory, _, loop_threads = served
    big = b"b" * (3 << 20)  # over one batch: streamed, not read whole first
    assert put_signed(port, "/mem/big", big).status == 200
    assert memory.read("big") == big
    assert memory.writes()[-1] not in set(loop_threads)


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_copy_from_another_store_into_memory_runs_in_a_worker(served: Any) -> None:
    port, memory, _, loop_threads = served
    assert put_signed(port, "/files/source", b"from fs").status == 200
    headers = signed_headers(
        port, "PUT", "/mem/copied", _EMPTY_SHA256, {"x-amz-copy-source": "files/source"}
    )
    assert send(port, "PUT", "/mem/copied", b"", headers).status == 200
    assert memory.read("copied") == b"from fs"
    assert memory.writes()[-1] not in set(loop_threads)
