"""Failover's policy, shared by both forms: which store is active, when to probe, every switch.

``failover_steps`` is the control flow around one call, written once as a generator
of steps (``storager/combinators/_steps.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from storager._async_protocols import AsyncStorager
from storager._protocols import Storager
from storager.combinators._base import served_by, single_attempt
from storager.combinators._steps import Steps

__all__ = [
    "PROBE",
    "PROBE_PATH",
    "AsyncProbe",
    "Probe",
    "Switchboard",
    "async_probe_answer",
    "failover_steps",
    "probe_answer",
]

logger = logging.getLogger("storager.combinators.failover")

#: A health probe of the primary: True when it is healthy (async: may be awaitable).
Probe = Callable[[Storager], bool]
AsyncProbe = Callable[[AsyncStorager], Awaitable[bool] | bool]

#: The path a default probe stats: any answer, even "not found", means the service is up.
PROBE_PATH = ".storager-probe"


#: The step of :func:`failover_steps` that probes the primary (others: a store's index).
PROBE = -1


def failover_steps(
    board: Switchboard, op: str, path: str, switch_on: Callable[[BaseException], bool]
) -> Steps[int, Any]:
    """Failover's control flow around one call, for both forms of Failover.

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

    The policy both forms of Failover share.
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


def probe_answer(probe: Probe, store: Storager) -> bool:
    """Ask a callable probe whether ``store`` is healthy."""
    return bool(probe(store))


async def async_probe_answer(probe: AsyncProbe, store: AsyncStorager) -> bool:
    """Ask a callable probe whether ``store`` is healthy, awaiting it if it is a coroutine."""
    answer = probe(store)
    if isinstance(answer, Awaitable):
        answer = await answer
    return bool(answer)
