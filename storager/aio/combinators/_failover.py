"""Failover: send operations to the primary, and to an alternative while it is down.

Written once: ``storager/aio/combinators/_failover.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_failover.py`` from it. The policy
(``Switchboard``) and the control flow of a call (``failover_steps``) are in
``storager/combinators/_failover_policy.py``.

When the active store fails with a transient error (retryable, or a connection
error), the same call moves on to the next alternative, which becomes active. While
an alternative is active, a health probe of the primary, at most once per interval,
decides when to switch back.

A multipart upload stays on the store that started it: its ``upload_id`` names that
store (``alternative1:<id>``), and the later calls of the upload go there without
switching, since no other store knows the upload.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter
from storager.aio.combinators._base import Call, async_common_capabilities, call_child, call_listing
from storager.aio.combinators._delegate import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
)
from storager.aio.combinators._replay import replayable_async
from storager.combinators._base import is_transient, served_by, single_attempt
from storager.combinators._failover_policy import (
    PROBE,
    PROBE_PATH,
    AsyncProbe,
    Switchboard,
    async_probe_answer,
    failover_steps,
)
from storager.combinators._steps import drive_async
from storager.combinators._trace import NO_SPAN, span, tracing

__all__ = ["AsyncFailover"]

T = TypeVar("T")


class AsyncFailover(AsyncDelegate):
    """One primary store and alternatives that take over while it fails.

    Args:
        primary: The store operations go to when it is healthy.
        alternatives: Stores to switch to, in order.
        probe: How to tell the primary is healthy again: a callable given the
            primary that returns True when healthy (on the async side it may be a
            coroutine function), or a path to ``stat`` (an answer, even
            NotFoundError, means healthy). Defaults to a stat of ``PROBE_PATH``.
        probe_interval: The least number of seconds between two probes.
        switch_on: Decides whether an error moves the call to the next store.
        clock: Monotonic seconds (inject a fake in tests).
        buffer_limit: Bytes of a one-shot stream buffered so a write can move on
            (a longer stream gets one store).

    The capabilities are those every store has.
    """

    combinator = "failover"

    def __init__(
        self,
        primary: AsyncStorager,
        *alternatives: AsyncStorager,
        probe: AsyncProbe | str = PROBE_PATH,
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
        return async_common_capabilities(stores)

    def children(self) -> Mapping[str, AsyncStorager]:
        return dict(zip(self._board.names, self._stores, strict=True))

    @property
    def active(self) -> str:
        """The name of the store operations go to now (``"primary"``, ``"alternative1"``...)."""
        return self._board.names[self._board.active]

    @property
    def active_store(self) -> AsyncStorager:
        """The store operations go to now."""
        return self._stores[self._board.active]

    def describe_label(self) -> str:
        return f"failover active={self.active}"

    async def _primary_healthy(self) -> bool:
        primary = self._stores[0]
        try:
            if callable(self._probe):
                return await async_probe_answer(self._probe, primary)
            await primary.stat(self._probe)
        except NotFoundError:
            return True
        except Exception:
            return False
        return True

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        def run(step: int) -> Awaitable[Any]:
            if step == PROBE:
                return self._primary_healthy()
            return call_child(self._stores[step], op, path, fn)

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
    """Uploads are pinned to the store that created them (see the module docstring)."""

    async def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        token = served_by.set("")
        try:
            mp = await super().create_multipart(path, **pairs)
            name = served_by.get() or self.active
        finally:
            served_by.reset(token)
        served_by.set(name)
        return Multipart(mp.path, f"{name}:{mp.upload_id}")

    def _pinned_store(self, op: str, multipart: Multipart) -> tuple[AsyncStorager, Multipart]:
        """Return the store an upload is pinned to, and the upload as that store knows it."""
        name, _, upload_id = multipart.upload_id.partition(":")
        names = self._board.names
        if name not in names or not upload_id:
            raise NotFoundError(op, "failover", multipart.path, "no such multipart upload")
        served_by.set(name)
        return self._stores[names.index(name)], Multipart(multipart.path, upload_id)

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span(self.describe_label(), op, path) if tracing() else NO_SPAN

    async def _pinned(
        self,
        op: str,
        multipart: Multipart,
        fn: Callable[[AsyncSegmenter, Multipart], Awaitable[T]],
    ) -> T:
        store, mp = self._pinned_store(op, multipart)
        with self._traced(op, multipart.path):
            return await call_child(
                store, op, multipart.path, lambda s: fn(cast(AsyncSegmenter, s), mp)
            )

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        return await self._pinned(
            "write_multipart", multipart, lambda s, mp: s.write_multipart(mp, number, data, **pairs)
        )

    async def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        return await self._pinned(
            "complete_multipart", multipart, lambda s, mp: s.complete_multipart(mp, parts, **pairs)
        )

    async def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        await self._pinned(
            "abort_multipart", multipart, lambda s, mp: s.abort_multipart(mp, **pairs)
        )

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> AsyncIterator[Part]:
        store, mp = self._pinned_store("list_multipart", multipart)
        with self._traced("list_multipart", multipart.path):
            return call_listing(
                store,
                "list_multipart",
                multipart.path,
                lambda s: cast(AsyncSegmenter, s).list_multipart(mp, **pairs),
            )


AsyncFailover._capability_mixins = {**ASYNC_DELEGATE_MIXINS, Segmenter: _AsyncFailoverSegmenter}
