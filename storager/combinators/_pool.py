"""A bounded thread pool shared by the calls of one combinator, with slot reservation.

A call that needs k threads at once (a mirrored stream write feeds k targets that
must all be running, or the feeder blocks forever) reserves k slots before it submits
anything. Reservations never exceed the pool's size, so every submitted task gets a
thread, however many calls run concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from storager.combinators._trace import in_context

__all__ = ["SlotPool"]

T = TypeVar("T")


class SlotPool:
    """A ThreadPoolExecutor of ``size`` threads whose tasks hold a slot each while they run."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._free = size
        self._cond = threading.Condition()

    def submit_all(self, fns: list[Callable[[], T]]) -> list[Future[T]]:
        """Run every ``fns`` at once on its own thread; blocks until that many are free.

        Raises:
            ValueError: More functions than the pool has threads.
        """
        k = len(fns)
        if k > self.size:
            raise ValueError(f"{k} tasks need more than the pool's {self.size} threads")
        with self._cond:
            while self._free < k:
                self._cond.wait()
            self._free -= k
        futures: list[Future[T]] = []
        try:
            for fn in fns:
                futures.append(self._executor.submit(self._run, in_context(fn)))
        except BaseException:
            self._release(k - len(futures))
            raise
        return futures

    def _run(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:
            self._release(1)

    def _release(self, k: int) -> None:
        if k:
            with self._cond:
                self._free += k
                self._cond.notify_all()

    def shutdown(self) -> None:
        """Stop accepting tasks; running and queued ones finish in the background.

        Nothing is cancelled: ``Future.cancel`` does not wake a ``wait()`` already
        waiting on the future, and a cancelled task would never release its slot.
        """
        self._executor.shutdown(wait=False)


def result_or_error(future: Future[Any]) -> tuple[Any, BaseException | None]:
    """Return ``(result, None)`` or ``(None, error)`` of a finished future."""
    err = future.exception()
    return (None, err) if err is not None else (future.result(), None)
