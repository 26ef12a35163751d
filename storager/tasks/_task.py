"""StorageTask: one storage operation handed to a TaskQueue, and its outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future
from typing import Any

from storager._errors import StorageError
from storager._object import Multipart
from storager._protocols import Storager, WriteData

__all__ = ["StorageTask", "TaskQueueClosedError", "TaskQueueFullError"]


class TaskQueueFullError(StorageError):
    """``submit`` waited ``timeout`` seconds and the queue still held ``max_pending`` tasks."""

    default_reason = "the task queue is full"


class TaskQueueClosedError(StorageError):
    """``submit`` was called on a queue that is closed or closing."""

    default_reason = "the task queue is closed"


def task_path(args: tuple[Any, ...]) -> str:
    """Return the path an operation's arguments name, for errors and logs."""
    if not args:
        return ""
    first = args[0]
    if isinstance(first, Multipart):
        return first.path
    return first if isinstance(first, str) else ""


class StorageTask(Future[Any]):
    """A storage operation running in the background: a ``concurrent.futures.Future``.

    ``result()`` is the operation's result (a listing comes as a list); ``exception()``
    the error of its last attempt. ``await task`` works in asyncio code.

    Attributes:
        op: The operation (``"write"``, ``"copy"``...).
        path: The path the operation names first.
        attempts: Attempts made so far, over every store.
        store: The store of the last attempt (the primary or an alternative).
        errors: The error of every failed attempt, in order.
    """

    def __init__(
        self,
        op: str,
        args: tuple[Any, ...],
        pairs: Mapping[str, Any],
        data: Callable[[], WriteData] | None = None,
        replayable: bool = True,
    ) -> None:
        super().__init__()
        self.op = op
        self.path = task_path(args)
        self.args = args
        self.pairs = dict(pairs)
        self.attempts = 0
        self.store: Storager | None = None
        self.errors: list[BaseException] = []
        self._data = data
        self.replayable = replayable
        self._reported = False
        self._report_lock = threading.Lock()

    def call_args(self) -> tuple[Any, ...]:
        """Return the arguments of the next attempt, with the data replayed when there is data."""
        if self._data is None:
            return self.args
        return (*self.args, self._data())

    def claim_report(self) -> bool:
        """Return True the first time only: the one caller that reports the outcome."""
        with self._report_lock:
            if self._reported:
                return False
            self._reported = True
            return True

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        return f"<StorageTask {self.op} {self.path!r} {self._state.lower()}>"
