"""AsyncFailover: Failover's switchboard (``storager.combinators._failover``), awaited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter
from storager.aio.combinators._base import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
    Call,
    _common,
)
from storager.aio.combinators._replay import replayable_async
from storager.combinators._base import is_transient, served_by, single_attempt
from storager.combinators._failover import PROBE, PROBE_PATH, Switchboard, failover_steps
from storager.combinators._steps import drive_async

__all__ = ["AsyncFailover"]

T = TypeVar("T")


class AsyncFailover(AsyncDelegate):
    """One primary async store and alternatives that take over while it fails.

    The twin of :class:`~storager.combinators.Failover`: same arguments, switching
    rules, probe and ``switches`` record; a callable probe may be a coroutine function.
    A multipart upload stays on the store that created it, as with the sync Failover.
    A write's data is given again to the next store as Failover gives it: a stream,
    sync or async, of at most ``buffer_limit`` bytes is buffered; a longer one gets
    one store.
    """

    combinator = "failover"

    def __init__(
        self,
        primary: AsyncStorager,
        *alternatives: AsyncStorager,
        probe: Callable[[AsyncStorager], Awaitable[bool] | bool] | str = PROBE_PATH,
        probe_interval: float = 5.0,
        switch_on: Callable[[BaseException], bool] = is_transient,
        clock: Callable[[], float] = time.monotonic,
        buffer_limit: int = 8 << 20,
    ) -> None:
        super().__init__(primary)
        if not alternatives:
            raise InvalidArgumentError("new", "failover", "", "give at least one alternative")
        for alt in alternatives:
            if not isinstance(alt, AsyncStorager):
                raise InvalidArgumentError(
                    "new", "failover", "", "alternatives must be AsyncStoragers"
                )
        self._stores = [primary, *alternatives]
        self._board = Switchboard(len(alternatives), probe_interval, clock)
        self._probe = probe
        self._switch_on = switch_on
        self._buffer_limit = buffer_limit
        #: Every switch as (from, to), oldest first, for observation.
        self.switches = self._board.switches

    @classmethod
    def _allowed_capabilities(cls, *stores: Any, **kwargs: Any) -> frozenset[type]:
        return _common(stores)

    def children(self) -> Mapping[str, AsyncStorager]:
        return dict(zip(self._board.names, self._stores, strict=True))

    @property
    def active(self) -> str:
        """The name of the store operations go to now."""
        return self._board.names[self._board.active]

    def describe_label(self) -> str:
        return f"failover active={self.active}"

    async def _primary_healthy(self) -> bool:
        primary = self._stores[0]
        try:
            if callable(self._probe):
                answer = self._probe(primary)
                if isinstance(answer, Awaitable):
                    answer = await answer
                return bool(answer)
            await primary.stat(self._probe)
        except NotFoundError:
            return True
        except Exception:
            return False
        return True

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        def run(step: int) -> Awaitable[Any]:
            return self._primary_healthy() if step == PROBE else fn(self._stores[step])

        steps = failover_steps(self._board, op, path, self._switch_on)
        return cast(T, await drive_async(steps, run))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        again, ok = await replayable_async("write", "failover", path, data, self._buffer_limit)
        if ok:
            return await self._call("write", path, lambda s: s.write(path, again(), **pairs))
        token = single_attempt.set("write")
        try:
            return await self._call("write", path, lambda s: s.write(path, again(), **pairs))
        finally:
            single_attempt.reset(token)


class _AsyncFailoverSegmenter(AsyncDelegateSegmenter, AsyncFailover):
    """Uploads are pinned to the store that created them (``name:upload_id``)."""

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        token = served_by.set("")
        try:
            mp = await super().create_multipart(path, **pairs)
            name = served_by.get() or self.active
        finally:
            served_by.reset(token)
        served_by.set(name)
        return Multipart(mp.path, f"{name}:{mp.upload_id}")

    def _pinned(self, op: str, multipart: Multipart) -> tuple[AsyncSegmenter, Multipart]:
        name, _, upload_id = multipart.upload_id.partition(":")
        names = self._board.names
        if name not in names or not upload_id:
            raise NotFoundError(op, "failover", multipart.path, "no such multipart upload")
        served_by.set(name)
        store = cast(AsyncSegmenter, self._stores[names.index(name)])
        return store, Multipart(multipart.path, upload_id)

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        store, mp = self._pinned("write_multipart", multipart)
        return await store.write_multipart(mp, number, data, **pairs)

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        store, mp = self._pinned("complete_multipart", multipart)
        return await store.complete_multipart(mp, parts, **pairs)

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        store, mp = self._pinned("abort_multipart", multipart)
        await store.abort_multipart(mp, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        store, mp = self._pinned("list_multipart", multipart)
        return store.list_multipart(mp, **pairs)


AsyncFailover._capability_mixins = {**ASYNC_DELEGATE_MIXINS, Segmenter: _AsyncFailoverSegmenter}
