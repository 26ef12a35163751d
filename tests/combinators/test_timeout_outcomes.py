"""Timeout never lets a change land after the caller was told it failed (issue 8, item 3).

Each scenario ends by waiting past the slow backend's delay and checking that every
store holds exactly what the caller was told: a clean OperationTimeoutError means
nothing was written, ever; a change that could no longer be stopped is reported as
OutcomeUnknownError, which nothing retries or rolls back as if it were clean.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storager import (
    NotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    StorageError,
    Storager,
)
from storager.combinators import Cached, Failover, Logged, Mirror, Retry, RetryPolicy, Timeout
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing.faulty import FaultyStorager

DEADLINE = 0.1
SLOW = 0.4
#: Long enough for a late call to have finished.
SETTLE = SLOW + 0.3


def _holds(store: Storager, path: str) -> bytes | None:
    try:
        return store.read(path)
    except NotFoundError:
        return None


class _FirstCallsSlow(dict[str, float]):
    """A latency mapping for FaultyStorager: the first ``n`` writes are slow, then none."""

    def __init__(self, n: int, seconds: float) -> None:
        super().__init__()
        self.left = n
        self.seconds = seconds

    def get(self, key: str, default: Any = None) -> Any:
        if key != "write":
            return 0.0
        if self.left > 0:
            self.left -= 1
            return self.seconds
        return 0.0


# -- (1) late landing -------------------------------------------------------------------


def test_timed_out_write_never_lands_later(make: Any) -> None:
    inner = make()
    store = Timeout(FaultyStorager(inner, latency={"write": SLOW}), DEADLINE)
    with pytest.raises(OperationTimeoutError):
        store.write("k", b"late")
    time.sleep(SETTLE)
    assert _holds(inner, "k") is None


def test_timed_out_stream_write_is_aborted_mid_stream_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    inner = FsStorage(root=str(tmp_path / "fs"))

    def slow_source() -> Iterator[bytes]:
        yield b"a" * 1000
        time.sleep(SLOW)
        yield b"b" * 1000

    store = Timeout(inner, DEADLINE)
    with pytest.raises(OperationTimeoutError):
        store.write("k", slow_source())
    time.sleep(SETTLE)
    assert _holds(inner, "k") is None
    assert os.listdir(tmp_path / "fs") == []  # no temp file left behind either


def test_write_past_its_point_of_no_return_is_reported_unknown_not_failed(make: Any) -> None:
    inner = make()
    store = Timeout(FaultyStorager(inner, commit_latency=SLOW), DEADLINE)
    with pytest.raises(OutcomeUnknownError) as info:
        store.write("k", b"maybe")
    assert info.value.retryable is False
    assert isinstance(info.value, TimeoutError)
    time.sleep(SETTLE)
    assert _holds(inner, "k") == b"maybe"  # it did land: "unknown" was the honest answer


def test_grace_waits_for_the_outcome_of_a_change_that_cannot_be_stopped(make: Any) -> None:
    inner = make()
    store = Timeout(FaultyStorager(inner, commit_latency=SLOW), DEADLINE, grace=SLOW + 1)
    assert store.write("k", b"v").content_length == 1
    assert inner.read("k") == b"v"


def test_delete_that_times_out_is_reported_unknown(make: Any) -> None:
    inner = make()
    inner.write("k", b"v")
    store = Timeout(FaultyStorager(inner, latency={"delete": SLOW}), DEADLINE)
    with pytest.raises(OutcomeUnknownError):
        store.delete("k")
    time.sleep(SETTLE)
    assert _holds(inner, "k") is None


def test_reads_still_time_out_cleanly(make: Any) -> None:
    inner = make()
    inner.write("k", b"v")
    store = Timeout(FaultyStorager(inner, latency={"read": SLOW}), DEADLINE)
    with pytest.raises(OperationTimeoutError) as info:
        store.read("k")
    assert info.value.retryable is True


# -- (2) lost update --------------------------------------------------------------------


def test_timed_out_write_does_not_overwrite_a_later_acknowledged_write(make: Any) -> None:
    inner = make()
    faulty = FaultyStorager(inner, latency={"write": SLOW})
    store = Timeout(faulty, DEADLINE)
    with pytest.raises(OperationTimeoutError):
        store.write("k", b"first, timed out")
    faulty.heal()
    store.write("k", b"second, acknowledged")
    time.sleep(SETTLE)
    assert inner.read("k") == b"second, acknowledged"


# -- (3) Retry over Timeout -------------------------------------------------------------


def test_retry_over_timeout_leaves_only_the_acknowledged_writes(make: Any) -> None:
    inner = make()
    faulty = FaultyStorager(inner, latency=_FirstCallsSlow(1, SLOW))
    store = Retry(Timeout(faulty, DEADLINE), RetryPolicy(initial_backoff=0.001))
    store.write("k", b"v1")  # the first attempt timed out, the second succeeded
    assert store.retries == 1
    store.write("k", b"v2")
    time.sleep(SETTLE)
    assert inner.read("k") == b"v2"
    assert faulty.calls["write"] == 3


def test_retry_does_not_retry_an_unknown_outcome(make: Any) -> None:
    inner = make()
    faulty = FaultyStorager(inner, commit_latency=SLOW)
    store = Retry(Timeout(faulty, DEADLINE), RetryPolicy(initial_backoff=0.001))
    with pytest.raises(OutcomeUnknownError):
        store.write("k", b"v")
    assert store.retries == 0
    assert faulty.calls["write"] == 1


# -- (4) Failover resurrecting a delete --------------------------------------------------


def test_failover_keeps_a_delete_after_a_timed_out_write(make: Any) -> None:
    primary, alternative = make("primary"), make("alternative")
    faulty = FaultyStorager(primary, latency={"write": SLOW})
    now = [0.0]
    store = Failover(
        Timeout(faulty, DEADLINE), alternative, probe_interval=1.0, clock=lambda: now[0]
    )
    store.write("k", b"v")  # times out on the primary, lands on the alternative
    assert store.active == "alternative1"
    store.delete("k")
    time.sleep(SETTLE)
    faulty.heal()
    now[0] += 10  # the probe passes: back to the primary
    with pytest.raises(NotFoundError):
        store.stat("k")
    assert store.active == "primary"
    assert _holds(primary, "k") is None
    assert _holds(alternative, "k") is None


def test_failover_does_not_switch_on_an_unknown_outcome(make: Any) -> None:
    primary, alternative = make("primary"), make("alternative")
    store = Failover(Timeout(FaultyStorager(primary, commit_latency=SLOW), DEADLINE), alternative)
    with pytest.raises(OutcomeUnknownError):
        store.write("k", b"v")
    assert store.active == "primary"
    assert _holds(alternative, "k") is None


# -- (5) the README tree ----------------------------------------------------------------


def _readme_tree(tmp_path: Path, slow: FaultyStorager) -> Storager:
    primary = Cached(MemoryStorage(), FsStorage(root=str(tmp_path / "primary")))
    mirror = Mirror({"primary": primary, "backup": Timeout(slow, DEADLINE)}, write="parallel")
    return Logged(Retry(mirror, RetryPolicy(max_attempts=3, initial_backoff=0.001)))


def test_readme_tree_with_a_slow_backup_keeps_both_targets_equal(tmp_path: Path) -> None:
    backup = FsStorage(root=str(tmp_path / "backup"))
    slow = FaultyStorager(backup)
    store = _readme_tree(tmp_path, slow)
    store.write("k", b"v1")
    slow.latency = {"write": SLOW}
    with pytest.raises(OperationTimeoutError):  # clean: rolled back, nothing lands later
        store.write("k", b"v2")
    time.sleep(3 * SLOW + 0.3)  # every attempt's late call has finished
    primary = FsStorage(root=str(tmp_path / "primary"))
    assert primary.read("k") == backup.read("k") == b"v1"


def test_readme_tree_with_a_slow_backup_commit_reports_unknown_and_converges(
    tmp_path: Path,
) -> None:
    backup = FsStorage(root=str(tmp_path / "backup"))
    slow = FaultyStorager(backup)
    store = _readme_tree(tmp_path, slow)
    store.write("k", b"v1")
    slow.commit_latency = SLOW
    with pytest.raises(OutcomeUnknownError) as info:
        store.write("k", b"v2")
    assert isinstance(info.value, StorageError) and info.value.retryable is False
    assert slow.calls["write"] == 2  # not retried
    time.sleep(SETTLE)
    primary = FsStorage(root=str(tmp_path / "primary"))
    assert primary.read("k") == backup.read("k") == b"v2"  # kept, not rolled back
