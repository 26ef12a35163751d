"""TaskQueue: storage operations run by background workers, with retries and failover.

Each accepted task is reported exactly once: its future resolves (result, error or
cancelled), then ``on_success`` or ``on_failure`` is called. A worker thread that dies
(an exception that is not an ``Exception`` escaped an operation or a callback) fails
its task with an ``UnexpectedError`` naming the cause, and is replaced.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from storager._capability import OPERATIONS
from storager._errors import (
    AlreadyExistsError,
    CapabilityInsufficientError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PairUnsupportedError,
    PreconditionFailedError,
    StorageError,
    UnexpectedError,
)
from storager._protocols import CAPABILITIES, Storager
from storager._retry_policy import RetryPolicy
from storager.combinators._base import is_transient, replayable
from storager.tasks._task import (
    StorageTask,
    TaskQueueClosedError,
    TaskQueueFullError,
    task_path,
)

__all__ = ["TaskQueue", "store_failed"]

logger = logging.getLogger("storager.tasks")

Callback = Callable[[StorageTask], None]

#: Operations whose last argument is data (replayed for a retry or an alternative).
_DATA_OPS = frozenset({"write", "append", "write_multipart"})
#: Not idempotent: a failed attempt may have taken effect, so it is not retried.
_NEVER_RETRIED = frozenset({"append"})
#: A reader belongs to the caller's thread; it is no background result.
_NOT_TASKS = frozenset({"open_reader"})
#: Errors about the request itself: another store would refuse it the same way.
_CALLER_ERRORS = (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PairUnsupportedError,
    PreconditionFailedError,
)


def store_failed(exc: BaseException) -> bool:
    """Return whether ``exc`` says the store failed (so an alternative may do better).

    True for storager errors other than those about the request itself (not found,
    invalid arguments, preconditions...), a missing capability included, and for
    ``OSError`` (connections, timeouts).
    """
    if isinstance(exc, StorageError):
        return not isinstance(exc, _CALLER_ERRORS) or isinstance(exc, CapabilityInsufficientError)
    return isinstance(exc, OSError)


class TaskQueue:
    """Run storage operations on background workers; see the module docstring.

    Args:
        store: The primary store every task goes to first.
        workers: Worker threads.
        max_pending: Accepted tasks not yet finished (queued or running) at most;
            ``submit`` blocks while the queue holds that many (back-pressure), and
            raises :class:`TaskQueueFullError` once its ``timeout`` has passed.
        retry: How a task is retried on one store (default: not retried).
        alternatives: Stores to try in order when a store fails for good (retries
            spent, or a failure ``switch_on`` accepts).
        on_success: Called with each task that succeeded, in a worker thread.
        on_failure: Called with each task that failed or was cancelled.
        retry_on: Whether an error is worth retrying on the same store.
        switch_on: Whether an error moves the task to the next alternative.
        sleep, rand, clock: Injected for tests.

    A write's data is made replayable when the task is submitted: bytes and seekable
    files as they are, another stream buffered up to ``retry.buffer_limit`` bytes (a
    longer one gets one attempt on the primary only).
    """

    def __init__(
        self,
        store: Storager,
        *,
        workers: int = 4,
        max_pending: int = 1000,
        retry: RetryPolicy | None = None,
        alternatives: Sequence[Storager] = (),
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
        retry_on: Callable[[BaseException], bool] = is_transient,
        switch_on: Callable[[BaseException], bool] = store_failed,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("workers", workers), ("max_pending", max_pending)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError("new", "tasks", "", f"{name} must be an int >= 1")
        for each in (store, *alternatives):
            if not isinstance(each, Storager):
                raise InvalidArgumentError(
                    "new", "tasks", "", f"not a Storager: {type(each).__name__}"
                )
        self._stores = (store, *alternatives)
        self._policy = retry or RetryPolicy(max_attempts=1)
        self._on_success = on_success
        self._on_failure = on_failure
        self._retry_on = retry_on
        self._switch_on = switch_on
        self._sleep = sleep
        self._rand = rand
        self._clock = clock
        self._max_pending = max_pending
        self._queue: deque[StorageTask] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self._stopping = False
        self._threads: set[threading.Thread] = set()
        #: How many dead workers were replaced.
        self.restarts = 0
        for _ in range(workers):
            self._spawn()

    # -- submitting -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Accepted tasks not finished yet (queued or running)."""
        return self._pending

    def submit(
        self, op: str, *args: Any, timeout: float | None = None, **pairs: Any
    ) -> StorageTask:
        """Accept ``store.<op>(*args, **pairs)`` as a background task and return it.

        Blocks while ``max_pending`` tasks are pending, up to ``timeout`` seconds
        (``None``: as long as it takes).

        Raises:
            InvalidArgumentError: ``op`` is no operation a task can run.
            CapabilityInsufficientError: The primary store lacks ``op``.
            TaskQueueFullError: The queue stayed full for ``timeout`` seconds.
            TaskQueueClosedError: The queue is closed or closing.
        """
        path = task_path(args)
        if op not in OPERATIONS or op in _NOT_TASKS:
            raise InvalidArgumentError("submit", "tasks", path, f"no task runs {op!r}")
        protocol = CAPABILITIES.get(OPERATIONS[op])
        if protocol is not None and not isinstance(self._stores[0], protocol):
            raise CapabilityInsufficientError("submit", "tasks", path, f"the store has no {op}")
        if op in _DATA_OPS and args:
            again, ok = replayable(op, "tasks", path, args[-1], self._policy.buffer_limit)
            task = StorageTask(op, args[:-1], pairs, again, ok)
        else:
            task = StorageTask(op, args, pairs)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed and self._pending >= self._max_pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TaskQueueFullError(
                        "submit", "tasks", path, f"{self._max_pending} tasks pending"
                    )
                self._cond.wait(left)
            if self._closed:
                raise TaskQueueClosedError("submit", "tasks", path)
            self._pending += 1
            self._queue.append(task)
            self._cond.notify_all()
        return task

    async def submit_async(self, op: str, *args: Any, **pairs: Any) -> StorageTask:
        """Submit from asyncio code: wait for room without blocking the loop.

        ``await`` the returned task for its result.
        """
        try:
            return self.submit(op, *args, timeout=0, **pairs)
        except TaskQueueFullError:
            call = functools.partial(self.submit, op, *args, **pairs)
            return await asyncio.get_running_loop().run_in_executor(None, call)

    # -- closing ----------------------------------------------------------------------

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop accepting tasks, then wait for the workers; return whether all finished.

        With ``drain=True`` every accepted task runs to its end; with ``drain=False``
        the queued ones are cancelled (and reported to ``on_failure``), the running
        ones finish. Returns False when ``timeout`` passed first, or at once when
        called from a callback (a worker thread), which cannot wait for itself.
        """
        with self._cond:
            self._closed = True
            dropped = [] if drain else list(self._queue)
            if not drain:
                self._queue.clear()
            self._cond.notify_all()
        for task in dropped:
            task.cancel()
            self._report(task)
        with self._cond:
            if threading.current_thread() in self._threads:
                # Called from a callback: waiting here would wait for this very task.
                return False
            finished = self._cond.wait_for(lambda: self._pending == 0, timeout)
            if finished:
                self._stopping = True
                self._cond.notify_all()
            threads = set(self._threads)
        if finished:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
        return finished

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(drain=True)

    # -- the workers ------------------------------------------------------------------

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="storager-task", daemon=True)
        with self._cond:
            self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        task: StorageTask | None = None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        return
                    task = self._queue.popleft()
                self._run(task)
                task = None
        except BaseException as exc:
            self._died(task, exc)
        finally:
            with self._cond:
                self._threads.discard(threading.current_thread())

    def _died(self, task: StorageTask | None, exc: BaseException) -> None:
        where = f" running {task.op} {task.path!r}" if task is not None else ""
        logger.error("task worker died%s: %r; starting another", where, exc)
        if task is not None and not task.done():
            error = UnexpectedError(task.op, "tasks", task.path, f"worker died: {exc!r}")
            error.__cause__ = exc
            task.set_exception(error)
        if task is not None:
            self._report(task)
        with self._cond:
            replace = not self._stopping
            if replace:
                self.restarts += 1
        if replace:
            self._spawn()

    def _run(self, task: StorageTask) -> None:
        if not task.set_running_or_notify_cancel():
            self._report(task)
            return
        error: BaseException | None = None
        for index, store in enumerate(self._stores):
            if index and not task.replayable:
                break
            error = self._attempts(task, store)
            if error is None:
                return
            if index + 1 < len(self._stores) and self._switch_on(error):
                logger.warning(
                    "task %s %r failed on store %d (%r); trying the next alternative",
                    task.op,
                    task.path,
                    index,
                    error,
                )
                continue
            break
        assert error is not None
        task.set_exception(error)
        self._report(task)

    def _attempts(self, task: StorageTask, store: Storager) -> BaseException | None:
        """Run ``task`` on ``store`` per the policy; return None on success, else the error."""
        policy = self._policy
        attempts = 1 if task.op in _NEVER_RETRIED or not task.replayable else policy.max_attempts
        start = self._clock()
        for attempt in range(1, attempts + 1):
            task.attempts += 1
            task.store = store
            try:
                result = _call(store, task)
            except Exception as exc:
                task.errors.append(exc)
                if attempt == attempts or not self._retry_on(exc):
                    return exc
                wait = policy.backoff(attempt, self._rand())
                if self._clock() - start + wait > policy.budget:
                    return exc
                self._sleep(wait)
                continue
            task.set_result(result)
            self._report(task)
            return None
        raise AssertionError("unreachable")  # pragma: no cover

    def _report(self, task: StorageTask) -> None:
        """Call the queue's callback for ``task`` once, and count it finished."""
        if not task.claim_report():
            return
        try:
            failed = task.cancelled() or task.exception() is not None
            callback = self._on_failure if failed else self._on_success
            if callback is not None:
                try:
                    callback(task)
                except Exception:
                    logger.exception("task callback failed for %s %r", task.op, task.path)
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()


def _call(store: Storager, task: StorageTask) -> Any:
    protocol = CAPABILITIES.get(OPERATIONS[task.op])
    if protocol is not None and not isinstance(store, protocol):
        raise CapabilityInsufficientError(
            task.op, "tasks", task.path, f"the store has no {task.op}"
        )
    result = getattr(store, task.op)(*task.call_args(), **task.pairs)
    if task.op.startswith("list"):
        return list(result)
    return result
