"""The conformance suite on the async side: every sync contract, plus the async-only ones.

Subclass :class:`AsyncStoragerSuite` and override ``storager_factory`` as for
:class:`~storager.testing.StoragerSuite`; by default the async store under test is the
async view of the store the factory opens (override ``to_async`` for a native async
store). Every contract of the sync suite runs through the async store, each call in a
fresh event loop, with the same capability gating; the tests below add what only the
async side has: async data sources, ``async for``, ``async with`` readers, loops in
other threads, and the capability protocols' twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from storager._async_protocols import ASYNC_CAPABILITIES, AsyncStorager
from storager._errors import NotFoundError
from storager._protocols import CAPABILITIES, Storager
from storager.aio import async_view
from storager.testing._async_bridge import blocking
from storager.testing._suite_base import Factory
from storager.testing.suite import StoragerSuite, _cleanup

__all__ = ["AsyncStoragerSuite"]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


class _AsyncFile:
    """A file whose ``read`` is a coroutine (as aiofiles' are)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        await asyncio.sleep(0)
        return self._inner.read(size)


class AsyncStoragerSuite(StoragerSuite):
    """The conformance suite run on the async twin of a store; see the module docstring."""

    def to_async(self, store: Storager) -> AsyncStorager:
        """Return the async store to test, given the sync store the factory opened."""
        return async_view(store)

    @pytest.fixture
    def async_store(self, storager_factory: Factory, work_dir: str) -> Iterator[AsyncStorager]:
        """The async store under test in ``work_dir``; cleaned up and closed afterwards."""
        sync = storager_factory(work_dir)
        store = self.to_async(sync)
        try:
            yield store
        finally:
            with contextlib.suppress(Exception):
                _cleanup(sync)
            asyncio.run(store.close())

    @pytest.fixture
    def store(self, async_store: AsyncStorager) -> Storager:
        """The async store seen through fresh event loops, for every sync contract."""
        return blocking(async_store)

    # -- what only the async side has --------------------------------------------------

    def test_async_capabilities_match_the_sync_ones(
        self, storager_factory: Factory, work_dir: str
    ) -> None:
        sync = storager_factory(work_dir)
        try:
            store = self.to_async(sync)
            for name, protocol in CAPABILITIES.items():
                assert isinstance(store, ASYNC_CAPABILITIES[name]) == isinstance(sync, protocol)
            assert isinstance(store, AsyncStorager)
            assert store.metadata().capability == sync.metadata().capability
        finally:
            sync.close()

    def test_write_accepts_async_iterables_async_files_and_sync_iterables(
        self, async_store: AsyncStorager
    ) -> None:
        async def run() -> list[bytes]:
            await async_store.write("from-async-iter", _chunks(b"ab", b"", b"cd"))
            await async_store.write("from-async-file", _AsyncFile(b"x" * 3000))
            await async_store.write("from-sync-iter", iter([b"12", b"34"]))
            await async_store.write("from-file", io.BytesIO(b"file"))
            names = ("from-async-iter", "from-async-file", "from-sync-iter", "from-file")
            return [await async_store.read(n) for n in names]

        assert asyncio.run(run()) == [b"abcd", b"x" * 3000, b"1234", b"file"]

    def test_reader_is_async_and_seekable(self, async_store: AsyncStorager) -> None:
        async def run() -> tuple[bytes, bytes, int, bytes]:
            await async_store.write("r.bin", bytes(range(200)))
            async with await async_store.open_reader("r.bin") as reader:
                first = await reader.read(10)
                await reader.seek(100)
                buffer = bytearray(5)
                count = await reader.readinto(buffer)
                position = await reader.tell()
                rest = await reader.read()
            return first + bytes(buffer), rest[:1], position, bytes([count])

        head, rest, position, count = asyncio.run(run())
        assert head == bytes(range(10)) + bytes(range(100, 105))
        assert (rest, position, count) == (bytes([105]), 105, b"\x05")

    def test_list_is_an_async_iterator(self, async_store: AsyncStorager) -> None:
        async def run() -> set[str]:
            await asyncio.gather(*(async_store.write(f"d/{i}", b"x") for i in range(5)))
            return {o.path async for o in async_store.list("d/", list_mode="prefix")}

        assert asyncio.run(run()) == {f"d/{i}" for i in range(5)}

    def test_errors_are_the_sync_errors(self, async_store: AsyncStorager) -> None:
        with pytest.raises(NotFoundError) as caught:
            asyncio.run(async_store.read("missing"))
        assert caught.value.op == "read"
        assert caught.value.path.endswith("missing")

    def test_one_store_serves_many_loops_and_threads(
        self, async_store: AsyncStorager, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def round_trip(tag: str) -> bytes:
            await async_store.write(f"loops/{tag}", tag.encode())
            return await async_store.read(f"loops/{tag}")

        seen = [asyncio.run(round_trip(f"run{i}")) for i in range(3)]
        errors: list[BaseException] = []

        def in_thread(tag: str) -> None:
            loop = asyncio.new_event_loop()
            try:
                seen.append(loop.run_until_complete(round_trip(tag)))
            except BaseException as exc:
                errors.append(exc)
            finally:
                loop.close()

        threads = [threading.Thread(target=in_thread, args=(f"t{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert sorted(seen) == [b"run0", b"run1", b"run2", b"t0", b"t1"]
        # No loop complained (a future of another loop, a task destroyed pending...).
        assert not [r for r in caplog.records if r.name == "asyncio"]
