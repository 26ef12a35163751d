"""A store for the fsspec tests whose async twin records its calls and can fail one.

``Watched(inner)`` is a sync pass-through store whose async view (what the filesystem
awaits) is a :class:`WatchedAsync` over ``inner.aio``: it counts the calls in flight at
once (each call yields to the loop before it runs, so concurrent calls overlap) and raises
the error set in ``fail`` for one ``(op, path)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from storager import Storager
from storager._async_protocols import AsyncStorager
from storager._service import Service
from storager.aio.combinators._delegate import AsyncDelegate
from storager.combinators._delegate import Delegate

T = TypeVar("T")


class WatchedAsync(AsyncDelegate):
    combinator = "watched"

    def __init__(self, inner: AsyncStorager) -> None:
        super().__init__(inner)
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], Exception] = {}

    async def _around(self, op: str, path: str, fn: Callable[[AsyncStorager], Awaitable[T]]) -> T:
        self.calls.append((op, path))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let every call started with this one start too
            error = self.fail.get((op, path))
            if error is not None:
                raise error
            return await fn(self._inner)
        finally:
            self.in_flight -= 1


class Watched(Delegate):
    combinator = "watched"

    def __init__(self, inner: Service) -> None:
        super().__init__(inner)
        self.watched = WatchedAsync(inner.aio)

    def _native_async(self) -> WatchedAsync:
        return self.watched


def watched(inner: Storager) -> Watched:
    assert isinstance(inner, Service)
    return Watched(inner)
