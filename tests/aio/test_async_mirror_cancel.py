"""AsyncMirror cancelled midway: nothing a target opened or started is left behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from storager import AsyncStorager, Object
from storager.aio import async_view
from storager.aio.combinators import AsyncDelegate, AsyncMirror
from storager.services.memory import MemoryStorage

#: Long enough never to end first in a test, short enough never to hang one.
_NEVER = 10.0

_opened: list[AsyncStorager] = []


def _mirror(targets: Any, **options: Any) -> Any:
    """An AsyncMirror closed when the test ends (closing it closes its targets)."""
    mirror = AsyncMirror(targets, **options)
    _opened.append(mirror)
    return mirror


@pytest.fixture(autouse=True)
def _close_mirrors() -> Iterator[None]:
    yield
    while _opened:
        asyncio.run(_opened.pop().close())


async def _until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (fails after a few seconds)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


def test_a_race_read_cancelled_while_the_losers_stop_closes_the_winners_reader() -> None:
    opened: list[str] = []
    closed: list[str] = []

    class Recording(AsyncDelegate):
        combinator = "recording"

        def __init__(self, inner: AsyncStorager, name: str, slow: bool) -> None:
            super().__init__(inner)
            self.name, self.slow = name, slow
            self.stopping = asyncio.Event()

        async def _around(self, op: str, path: str, fn: Any) -> Any:
            if op == "open_reader" and self.slow:
                try:
                    await asyncio.sleep(_NEVER)
                except asyncio.CancelledError:
                    self.stopping.set()
                    await asyncio.sleep(0.05)  # a loser that takes a while to stop
                    raise
            result = await fn(self._inner)
            if op == "open_reader":
                opened.append(self.name)
                close = result.close

                async def recorded() -> None:
                    closed.append(self.name)
                    await close()

                result.close = recorded
            return result

    stores = {n: MemoryStorage() for n in ("fast", "slow")}
    for store in stores.values():
        store.write("k", b"data")

    async def main() -> None:
        slow = Recording(async_view(stores["slow"]), "slow", slow=True)
        fast = Recording(async_view(stores["fast"]), "fast", slow=False)
        mirror = _mirror({"fast": fast, "slow": slow}, read="race")
        call = asyncio.ensure_future(mirror.open_reader("k"))
        await asyncio.wait_for(slow.stopping.wait(), 5)  # fast won; slow is stopping
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    assert opened == ["fast"]
    assert closed == ["fast"]


@pytest.mark.parametrize("write", ["sequential", "parallel"])
def test_a_timed_out_create_multipart_aborts_the_uploads_it_started(write: str) -> None:
    created: list[str] = []
    aborted: list[str] = []

    class Uploads(AsyncDelegate):
        combinator = "uploads"

        def __init__(self, inner: AsyncStorager, slow: bool) -> None:
            super().__init__(inner)
            self.slow = slow

        async def _around(self, op: str, path: str, fn: Any) -> Any:
            if op == "create_multipart" and self.slow:
                await asyncio.sleep(_NEVER)
            result = await fn(self._inner)
            if op == "create_multipart":
                created.append(result.path)
            if op == "abort_multipart":
                aborted.append(path)
            return result

    async def main() -> None:
        mirror = _mirror(
            {
                "a": Uploads(async_view(MemoryStorage()), slow=False),
                "b": Uploads(async_view(MemoryStorage()), slow=True),
            },
            write=write,
        )
        call = asyncio.ensure_future(mirror.create_multipart("big"))
        await _until(lambda: created)  # a has its upload; b never answers
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(main())
    assert len(created) == 1
    assert aborted == created


def test_a_cancelled_streamed_write_leaves_no_task_behind() -> None:
    class SlowReader(AsyncDelegate):
        combinator = "slowreader"

        async def write(self, path: str, data: Any, **pairs: Any) -> Object:
            async for _ in data:
                await asyncio.sleep(_NEVER)
            raise AssertionError("never reached")

    async def source() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"x" * 1000

    def queue_puts() -> list[asyncio.Task[Any]]:
        return [
            t
            for t in asyncio.all_tasks()
            if not t.done() and "Queue.put" in t.get_coro().__qualname__  # type: ignore[union-attr]
        ]

    async def main() -> list[asyncio.Task[Any]]:
        mirror = _mirror(
            {
                "a": async_view(MemoryStorage()),
                "b": SlowReader(async_view(MemoryStorage())),
            },
            queue_chunks=1,
        )
        call = asyncio.ensure_future(mirror.write("k", source()))
        await _until(queue_puts)  # b's queue is full: the feed waits on a put
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(3):
            await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(main()) == []


@pytest.mark.parametrize("read", ["race", "first"])
def test_a_listing_closes_every_targets_listing_when_the_caller_stops_early(read: str) -> None:
    closed: list[str] = []

    class Listing(AsyncDelegate):
        combinator = "listing"

        def __init__(self, inner: AsyncStorager, name: str) -> None:
            super().__init__(inner)
            self.name = name

        def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
            return self._list(path, pairs)

        async def _list(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
            try:
                async for obj in self._inner.list(path, **pairs):
                    yield obj
            finally:
                closed.append(self.name)

    stores = {n: MemoryStorage() for n in ("a", "b", "c")}
    for store in stores.values():
        for i in range(5):
            store.write(f"k{i}", b"x")

    async def main() -> list[str]:
        mirror = _mirror({n: Listing(async_view(s), n) for n, s in stores.items()}, read=read)
        listing = mirror.list("")
        first = await anext(listing)
        await listing.aclose()
        # Before the loop runs again: nothing is left for a garbage collector hook.
        return [first.path, *sorted(closed)]

    got = asyncio.run(main())
    assert got[0].startswith("k")
    # race: every target listed and every listing is closed; first: only "a" listed.
    assert got[1:] == (["a", "b", "c"] if read == "race" else ["a"])


def test_listing_parts_closes_the_targets_listing_when_the_caller_stops_early() -> None:
    closed: list[str] = []
    target: Any = async_view(MemoryStorage())
    list_parts = target.list_multipart

    async def recorded(multipart: Any, **pairs: Any) -> AsyncIterator[Any]:
        try:
            async for part in list_parts(multipart, **pairs):
                yield part
        finally:
            closed.append(multipart.path)

    target.list_multipart = recorded  # this target's listings only

    async def main() -> tuple[int, list[str]]:
        mirror = _mirror({"a": target, "b": async_view(MemoryStorage())})
        upload = await mirror.create_multipart("big")
        for number in (1, 2, 3):
            await mirror.write_multipart(upload, number, b"x" * 10)
        listing = mirror.list_multipart(upload)
        first = await anext(listing)
        await listing.aclose()
        seen = list(closed)  # before the loop runs again
        await mirror.abort_multipart(upload)
        return first.number, seen

    number, seen = asyncio.run(main())
    assert number == 1
    assert len(seen) == 1
