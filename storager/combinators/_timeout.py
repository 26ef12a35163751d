"""Timeout: give every operation a deadline.

The call runs on the wrapper's own thread pool while the caller waits at most the
deadline, then gets :class:`~storager.OperationTimeoutError` (a TimeoutError, and
retryable). Python cannot stop a thread, so a call that timed out keeps running in the
background until the service answers; its result is dropped. If every pool thread is
stuck so, later calls wait in the queue and time out too, which is the honest answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar, cast

from storager._errors import InvalidArgumentError, OperationTimeoutError
from storager._protocols import Storager
from storager.combinators._base import Delegate, call_child
from storager.combinators._trace import in_context

__all__ = ["Timeout"]

T = TypeVar("T")


class Timeout(Delegate):
    """Raise OperationTimeoutError when an operation takes longer than its deadline.

    Args:
        inner: The store to wrap; its capabilities are kept.
        seconds: The deadline of every operation.
        per_op: Deadlines for particular operations (``{"read": 1.0}``); ``None``
            as a value means no deadline for that operation.
        workers: Threads in the wrapper's pool.

    A deadline covers the call: for ``open_reader``, opening; for ``list``, the
    first page.
    """

    combinator = "timeout"

    def __init__(
        self,
        inner: Storager,
        seconds: float,
        *,
        per_op: Mapping[str, float | None] | None = None,
        workers: int = 8,
    ) -> None:
        super().__init__(inner)
        for value in [seconds, *(per_op or {}).values()]:
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise InvalidArgumentError("new", "timeout", "", "deadlines must be positive")
        self.seconds = seconds
        self.per_op = dict(per_op or {})
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storager-timeout")

    def describe_label(self) -> str:
        return f"timeout {self.seconds:g}s"

    def _close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        deadline = self.per_op.get(op, self.seconds)
        if deadline is None:
            return call_child(self._inner, op, path, fn)
        future = self._pool.submit(in_context(call_child), self._inner, op, path, fn)
        try:
            return cast(T, future.result(timeout=deadline))
        except FutureTimeout:
            future.cancel()
            raise OperationTimeoutError(
                op, "timeout", path, f"no answer within {deadline:g} s"
            ) from None
