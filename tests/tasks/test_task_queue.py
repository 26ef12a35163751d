"""TaskQueue: retries, failover, dead workers, raising callbacks, drain, cancel, back-pressure."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from storager import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ServiceInternalError,
    UnexpectedError,
)
from storager.combinators import Event, Logged, RetryPolicy
from storager.services.memory import MemoryStorage
from storager.tasks import (
    StorageTask,
    TaskQueue,
    TaskQueueClosedError,
    TaskQueueFullError,
)
from storager.testing import Fault, FaultyStorager


class Reports:
    """Records every callback, to check each task is reported exactly once."""

    def __init__(self) -> None:
        self.ok: Counter[int] = Counter()
        self.failed: Counter[int] = Counter()
        self.lock = threading.Lock()

    def on_success(self, task: StorageTask) -> None:
        with self.lock:
            self.ok[id(task)] += 1

    def on_failure(self, task: StorageTask) -> None:
        with self.lock:
            self.failed[id(task)] += 1


def no_sleep(seconds: float) -> None:
    pass


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_failing_task_is_retried_until_it_succeeds() -> None:
    store = FaultyStorager(MemoryStorage(), fail={"write": 2})
    reports = Reports()
    waits: list[float] = []
    with TaskQueue(
        store,
        retry=RetryPolicy(max_attempts=3),
        sleep=waits.append,
        on_success=reports.on_success,
        on_failure=reports.on_failure,
    ) as queue:
        task = queue.submit("write", "a.txt", b"data")
        assert task.result(timeout=5).content_length == 4
    assert task.attempts == 3
    assert len(waits) == 2
    assert reports.ok == {id(task): 1} and not reports.failed
    assert store.read("a.txt") == b"data"


def test_a_task_whose_retries_are_spent_goes_to_the_alternative() -> None:
    primary = FaultyStorager(MemoryStorage(), fail={"write": ServiceInternalError})
    backup = MemoryStorage()
    reports = Reports()
    with TaskQueue(
        primary,
        retry=RetryPolicy(max_attempts=3),
        alternatives=[backup],
        sleep=no_sleep,
        on_success=reports.on_success,
        on_failure=reports.on_failure,
    ) as queue:
        task = queue.submit("write", "r/q1.csv", iter([b"a,b\n", b"1,2\n"]))
        task.result(timeout=5)
    assert task.store is backup
    assert task.attempts == 4
    assert [type(e) for e in task.errors] == [ServiceInternalError] * 3
    assert backup.read("r/q1.csv") == b"a,b\n1,2\n"
    assert reports.ok == {id(task): 1} and not reports.failed


def test_a_non_retryable_service_error_switches_at_once() -> None:
    primary = FaultyStorager(MemoryStorage(), fail={"write": PermissionDeniedError})
    backup = MemoryStorage()
    with TaskQueue(
        primary, retry=RetryPolicy(max_attempts=5), alternatives=[backup], sleep=no_sleep
    ) as queue:
        task = queue.submit("write", "a", b"x")
        task.result(timeout=5)
    assert task.attempts == 2
    assert task.store is backup


def test_an_error_about_the_request_is_neither_retried_nor_switched() -> None:
    backup = MemoryStorage()
    backup.write("src", b"there")
    reports = Reports()
    with TaskQueue(
        MemoryStorage(),
        retry=RetryPolicy(max_attempts=5),
        alternatives=[backup],
        sleep=no_sleep,
        on_success=reports.on_success,
        on_failure=reports.on_failure,
    ) as queue:
        task = queue.submit("copy", "src", "dst")
        with pytest.raises(NotFoundError):
            task.result(timeout=5)
    assert task.attempts == 1
    assert reports.failed == {id(task): 1} and not reports.ok
    with pytest.raises(NotFoundError):
        backup.stat("dst")


def test_a_task_failing_everywhere_reports_the_last_error_once() -> None:
    stores = [FaultyStorager(MemoryStorage(), fail={"delete": ServiceInternalError}) for _ in "ab"]
    reports = Reports()
    with TaskQueue(
        stores[0],
        alternatives=[stores[1]],
        retry=RetryPolicy(max_attempts=2),
        sleep=no_sleep,
        on_success=reports.on_success,
        on_failure=reports.on_failure,
    ) as queue:
        task = queue.submit("delete", "a")
        with pytest.raises(ServiceInternalError):
            task.result(timeout=5)
    assert task.attempts == 4
    assert task.store is stores[1]
    assert reports.failed == {id(task): 1} and not reports.ok


def test_a_dead_worker_is_replaced_and_its_task_reported() -> None:
    store = FaultyStorager(MemoryStorage(), fail={"write": Fault(error=SystemExit, times=1)})
    reports = Reports()
    with TaskQueue(
        store, workers=1, on_success=reports.on_success, on_failure=reports.on_failure
    ) as queue:
        doomed = queue.submit("write", "doomed", b"x")
        with pytest.raises(UnexpectedError, match="worker died") as caught:
            doomed.result(timeout=5)
        assert isinstance(caught.value.__cause__, SystemExit)
        later = [queue.submit("write", f"later/{i}", b"y") for i in range(10)]
        assert all(t.result(timeout=5).content_length == 1 for t in later)
        assert queue.restarts == 1
    assert reports.failed == {id(doomed): 1}
    assert sum(reports.ok.values()) == 10 and set(reports.ok.values()) == {1}


def test_a_raising_callback_is_logged_and_the_worker_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(task: StorageTask) -> None:
        raise ValueError("callback bug")

    with caplog.at_level(logging.ERROR, logger="storager.tasks"):
        with TaskQueue(MemoryStorage(), workers=1, on_success=explode) as queue:
            tasks = [queue.submit("write", f"cb/{i}", b"x") for i in range(3)]
            assert all(t.result(timeout=5).content_length == 1 for t in tasks)
        assert queue.restarts == 0
    assert "task callback failed for write 'cb/0'" in caplog.text


def test_mixed_outcomes_are_each_reported_exactly_once() -> None:
    store = FaultyStorager(MemoryStorage(), fail={"write": lambda path: path.endswith("7")})
    reports = Reports()
    with TaskQueue(
        store,
        workers=4,
        max_pending=16,
        on_success=reports.on_success,
        on_failure=reports.on_failure,
    ) as queue:
        tasks = [queue.submit("write", f"m/{i}", b"x") for i in range(200)]
    assert all(t.done() for t in tasks)
    assert sum(reports.ok.values()) == 180 and set(reports.ok.values()) == {1}
    assert sum(reports.failed.values()) == 20 and set(reports.failed.values()) == {1}
    assert set(reports.ok) | set(reports.failed) == {id(t) for t in tasks}


def test_close_with_drain_finishes_every_accepted_task() -> None:
    store = FaultyStorager(MemoryStorage(), latency=0.01)
    queue = TaskQueue(store, workers=2)
    tasks = [queue.submit("write", f"d/{i}", b"x") for i in range(20)]
    assert queue.close(drain=True)
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert len(list(store.list("d/"))) == 20
    with pytest.raises(TaskQueueClosedError):
        queue.submit("write", "late", b"x")


def test_close_without_drain_cancels_the_queued_tasks() -> None:
    gate = threading.Event()
    store = held_until(gate, "first")
    reports = Reports()
    queue = TaskQueue(
        store, workers=1, on_success=reports.on_success, on_failure=reports.on_failure
    )
    blocker = queue.submit("write", "first", b"x")
    wait_until(blocker.running)  # the worker holds it: close cannot cancel it any more
    queued = [queue.submit("write", f"q/{i}", b"x") for i in range(5)]
    threading.Timer(0.1, gate.set).start()
    assert queue.close(drain=False)
    assert blocker.result(timeout=5).content_length == 1
    assert all(t.cancelled() for t in queued)
    assert reports.ok == {id(blocker): 1}
    assert reports.failed == {id(t): 1 for t in queued}
    assert list(store.list("q/")) == []


def held_until(gate: threading.Event, held: str) -> FaultyStorager:
    """A memory store whose calls on ``held`` wait for ``gate`` (a fault that never fires)."""

    def wait(path: str) -> bool:
        if path == held:
            gate.wait(5)
        return False

    return FaultyStorager(MemoryStorage(), fail={"*": wait})


def test_submit_blocks_at_max_pending_and_raises_after_its_timeout() -> None:
    gate = threading.Event()
    queue = TaskQueue(held_until(gate, "one"), workers=1, max_pending=2)
    try:
        first = queue.submit("write", "one", b"x")
        queue.submit("write", "two", b"x")
        assert queue.pending == 2
        with pytest.raises(TaskQueueFullError, match="2 tasks pending"):
            queue.submit("write", "three", b"x", timeout=0.05)
        threading.Timer(0.05, gate.set).start()
        third = queue.submit("write", "three", b"x", timeout=5)
        assert third.result(timeout=5).content_length == 1
        assert first.done()
    finally:
        gate.set()
        queue.close()


def test_submit_refuses_what_no_task_can_run() -> None:
    with TaskQueue(MemoryStorage()) as queue:
        with pytest.raises(InvalidArgumentError, match="no task runs 'open_reader'"):
            queue.submit("open_reader", "a")
        with pytest.raises(InvalidArgumentError, match="no task runs 'fly'"):
            queue.submit("fly", "a")


def test_asyncio_code_submits_and_awaits_tasks() -> None:
    queue = TaskQueue(MemoryStorage(), workers=2, max_pending=2)

    async def main() -> list[int]:
        tasks = [await queue.submit_async("write", f"a/{i}", b"xy") for i in range(6)]
        return [(await t).content_length for t in tasks]

    try:
        assert asyncio.run(main()) == [2] * 6
        listed = asyncio.run(_listing(queue))
        assert sorted(o.path for o in listed) == [f"a/{i}" for i in range(6)]
    finally:
        queue.close()


async def _listing(queue: TaskQueue) -> list[object]:
    return list(await await_task(queue))


async def await_task(queue: TaskQueue) -> list[object]:
    task = await queue.submit_async("list", "a/")
    result: list[object] = await task
    return result


def test_each_attempt_shows_in_the_logged_events_of_a_logged_store() -> None:
    events: list[Event] = []
    store = Logged(
        FaultyStorager(MemoryStorage(), fail={"write": 1}),
        on_success=events.append,
        on_failure=events.append,
    )
    with TaskQueue(store, retry=RetryPolicy(max_attempts=2), sleep=no_sleep) as queue:
        queue.submit("write", "logged.txt", b"abc").result(timeout=5)
    assert [(e.operation, e.path, e.outcome) for e in events] == [
        ("write", "logged.txt", "ServiceInternalError"),
        ("write", "logged.txt", "ok"),
    ]


def test_a_callback_that_kills_its_worker_reports_the_task_once_and_is_replaced() -> None:
    calls: Counter[str] = Counter()

    def fatal(task: StorageTask) -> None:
        calls[task.path] += 1
        if task.path == "fatal":
            raise SystemExit

    with TaskQueue(MemoryStorage(), workers=1, on_success=fatal) as queue:
        first = queue.submit("write", "fatal", b"x")
        assert first.result(timeout=5).content_length == 1
        later = [queue.submit("write", f"after/{i}", b"y") for i in range(3)]
        assert all(t.result(timeout=5).content_length == 1 for t in later)
        wait_until(lambda: queue.restarts == 1)
    assert calls == Counter({"fatal": 1, "after/0": 1, "after/1": 1, "after/2": 1})
    assert queue.pending == 0


def test_close_from_a_callback_does_not_wait_for_itself() -> None:
    answers: list[bool] = []
    queue: TaskQueue

    def close_now(task: StorageTask) -> None:
        answers.append(queue.close(drain=True))

    queue = TaskQueue(MemoryStorage(), workers=1, on_success=close_now)
    queue.submit("write", "a", b"x").result(timeout=5)
    wait_until(lambda: queue.pending == 0)
    assert answers == [False]
    with pytest.raises(TaskQueueClosedError):
        queue.submit("write", "b", b"x")
    assert queue.close(drain=True)
