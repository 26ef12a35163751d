"""Failover: send operations to the primary, and to an alternative while it is down.

When the active store fails with a transient error (retryable, or a connection
error), the same call moves on to the next alternative, which becomes active. While
an alternative is active, a health probe of the primary, at most once per interval,
decides when to switch back.

A multipart upload stays on the store that started it: its ``upload_id`` names that
store (``alternative1:<id>``), and the later calls of the upload go there without
switching, since no other store knows the upload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar, cast

from storager._errors import InvalidArgumentError, NotFoundError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, Storager, WriteData
from storager.combinators._base import (
    DELEGATE_MIXINS,
    Delegate,
    DelegateSegmenter,
    call_child,
    common_capabilities,
    is_transient,
    prime,
    replayable,
    served_by,
    single_attempt,
)
from storager.combinators._steps import Steps, drive
from storager.combinators._trace import span, tracing

__all__ = ["Failover", "Switchboard"]

T = TypeVar("T")
logger = logging.getLogger("storager.combinators.failover")

#: The path a default probe stats: any answer, even "not found", means the service is up.
PROBE_PATH = ".storager-probe"


#: The step of :func:`failover_steps` that probes the primary (others: a store's index).
PROBE = -1


def failover_steps(
    board: Switchboard, op: str, path: str, switch_on: Callable[[BaseException], bool]
) -> Steps[int, Any]:
    """Failover's control flow around one call, for Failover and AsyncFailover alike.

    Yields :data:`PROBE` (send whether the primary is healthy) or the index of the
    store to run the call on (send its result, or throw its error in); returns the
    result of the store that served. Each error goes to ``board.failed``, which
    switches or re-raises it.
    """
    if board.probe_due() and (yield PROBE):
        board.switch(0, "the primary's health probe passed")
    first, last = board.span(single_attempt.get() != "")
    for index in range(first, last):
        try:
            result = yield index
        except Exception as exc:
            board.failed(op, path, index, last, exc, switch_on)
            continue
        board.served(op, first, index)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


class Switchboard:
    """Which store of a Failover is active, when to probe the primary, and every switch.

    The policy Failover and its async twin share; they only differ in how they wait.
    """

    def __init__(
        self, alternatives: int, probe_interval: float, clock: Callable[[], float]
    ) -> None:
        self.names = ["primary", *(f"alternative{i}" for i in range(1, alternatives + 1))]
        self.active = 0
        self.switches: list[tuple[str, str]] = []
        self._probe_interval = probe_interval
        self._clock = clock
        self._last_probe = clock()
        self._lock = threading.Lock()

    def probe_due(self) -> bool:
        """Return whether to probe the primary now (an alternative is active, interval past)."""
        if self.active == 0:
            return False
        now = self._clock()
        with self._lock:
            if now - self._last_probe < self._probe_interval:
                return False
            self._last_probe = now
        return True

    def span(self, single_attempt: bool) -> tuple[int, int]:
        """Return the indexes of the stores a call may try: from the active one on."""
        first = self.active
        return first, (first + 1 if single_attempt else len(self.names))

    def failed(
        self,
        op: str,
        path: str,
        index: int,
        last: int,
        exc: Exception,
        switch_on: Callable[[BaseException], bool],
    ) -> None:
        """Re-raise ``exc`` unless the call moves on to the next store."""
        if index + 1 >= last or not switch_on(exc):
            raise exc
        logger.info("failover: %s %s failed on %s: %s", op, path, self.names[index], exc)

    def served(self, op: str, first: int, index: int) -> None:
        """Record that store ``index`` answered a call that started at ``first``."""
        if index != first:
            self.switch(index, f"{op} failed on {self.names[first]}")
        served_by.set(self.names[index])

    def switch(self, index: int, why: str) -> None:
        """Make store ``index`` the active one, and log why."""
        with self._lock:
            if self.active == index:
                return
            old = self.names[self.active]
            self.active = index
            self._last_probe = self._clock()
            self.switches.append((old, self.names[index]))
        logger.warning(
            "failover: switched from %s to %s (%s)",
            old,
            self.names[index],
            why,
            extra={"from_store": old, "to_store": self.names[index]},
        )


class Failover(Delegate):
    """One primary store and alternatives that take over while it fails.

    Args:
        primary: The store operations go to when it is healthy.
        alternatives: Stores to switch to, in order.
        probe: How to tell the primary is healthy again: a callable given the
            primary that returns True when healthy, or a path to ``stat`` (an answer,
            even NotFoundError, means healthy). Defaults to a stat of ``PROBE_PATH``.
        probe_interval: The least number of seconds between two probes.
        switch_on: Decides whether an error moves the call to the next store.
        clock: Monotonic seconds (inject a fake in tests).
        buffer_limit: Bytes of a one-shot stream buffered so a write can move on.

    The capabilities are those every store has.
    """

    combinator = "failover"

    def __init__(
        self,
        primary: Storager,
        *alternatives: Storager,
        probe: Callable[[Storager], bool] | str = PROBE_PATH,
        probe_interval: float = 5.0,
        switch_on: Callable[[BaseException], bool] = is_transient,
        clock: Callable[[], float] = time.monotonic,
        buffer_limit: int = 8 << 20,
    ) -> None:
        super().__init__(primary)
        if not alternatives:
            raise InvalidArgumentError("new", "failover", "", "give at least one alternative")
        for alt in alternatives:
            if not isinstance(alt, Storager):
                raise InvalidArgumentError("new", "failover", "", "alternatives must be Storagers")
        self._stores = [primary, *alternatives]
        self._board = Switchboard(len(alternatives), probe_interval, clock)
        self._names = self._board.names
        self._probe = probe
        self._switch_on = switch_on
        self._buffer_limit = buffer_limit
        #: Every switch as (from, to), oldest first, for observation.
        self.switches = self._board.switches

    @classmethod
    def _allowed_capabilities(cls, *stores: Any, **kwargs: Any) -> frozenset[type]:
        return common_capabilities(stores)

    def children(self) -> Mapping[str, Storager]:
        return dict(zip(self._names, self._stores, strict=True))

    @property
    def active(self) -> str:
        """The name of the store operations go to now (``"primary"``, ``"alternative1"``...)."""
        return self._names[self._board.active]

    @property
    def active_store(self) -> Storager:
        """The store operations go to now."""
        return self._stores[self._board.active]

    def describe_label(self) -> str:
        return f"failover active={self.active}"

    def _primary_healthy(self) -> bool:
        primary = self._stores[0]
        try:
            if callable(self._probe):
                return bool(self._probe(primary))
            primary.stat(self._probe)
        except NotFoundError:
            return True
        except Exception:
            return False
        return True

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        def run(step: int) -> Any:
            if step == PROBE:
                return self._primary_healthy()
            return call_child(self._stores[step], op, path, fn)

        steps = failover_steps(self._board, op, path, self._switch_on)
        return cast(T, drive(steps, run))

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        again, ok = replayable("write", "failover", path, data, self._buffer_limit)
        if ok:
            return self._call("write", path, lambda s: s.write(path, again(), **pairs))
        token = single_attempt.set("write")
        try:
            return self._call("write", path, lambda s: s.write(path, again(), **pairs))
        finally:
            single_attempt.reset(token)


class _FailoverSegmenter(DelegateSegmenter, Failover):
    """Uploads are pinned to the store that created them (see the module docstring)."""

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        token = served_by.set("")
        try:
            mp = super().create_multipart(path, **pairs)
            name = served_by.get() or self.active
        finally:
            served_by.reset(token)
        served_by.set(name)
        return Multipart(mp.path, f"{name}:{mp.upload_id}")

    def _pinned(self, op: str, multipart: Multipart, fn: Callable[[Segmenter, Multipart], T]) -> T:
        name, _, upload_id = multipart.upload_id.partition(":")
        if name not in self._names or not upload_id:
            raise NotFoundError(op, "failover", multipart.path, "no such multipart upload")
        store = self._stores[self._names.index(name)]
        inner = Multipart(multipart.path, upload_id)
        served_by.set(name)
        with span(self.describe_label(), op, multipart.path) if tracing() else nullcontext():
            return call_child(store, op, multipart.path, lambda s: fn(cast(Segmenter, s), inner))

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        return self._pinned(
            "write_multipart", multipart, lambda s, mp: s.write_multipart(mp, number, data, **pairs)
        )

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        return self._pinned(
            "complete_multipart", multipart, lambda s, mp: s.complete_multipart(mp, parts, **pairs)
        )

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        self._pinned("abort_multipart", multipart, lambda s, mp: s.abort_multipart(mp, **pairs))

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        return self._pinned(
            "list_multipart", multipart, lambda s, mp: prime(s.list_multipart(mp, **pairs))
        )


Failover._capability_mixins = {**DELEGATE_MIXINS, Segmenter: _FailoverSegmenter}
