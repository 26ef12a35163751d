"""Retry: try an operation again when it failed with a retryable error.

Backoff grows exponentially with jitter, up to a number of attempts and a total time
budget. Errors that are not retryable pass through at once. A write's data must be
replayable: bytes and seekable files are; any other stream is buffered up to
``RetryPolicy.buffer_limit`` bytes, and a longer one is written once, not retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, Storager, WriteData
from storager._retry_policy import RetryPolicy
from storager.combinators._base import (
    DELEGATE_MIXINS,
    Delegate,
    DelegateSegmenter,
    call_child,
    is_transient,
    replayable,
    single_attempt,
)

__all__ = ["Attempts", "Retry", "RetryPolicy", "note_not_replayed"]

T = TypeVar("T")

#: Not idempotent: a failed attempt may have taken effect, so a retry could duplicate it.
_NEVER_RETRIED = frozenset({"append"})


class Attempts:
    """The retry policy of one call, shared by Retry and its async twin.

    ``wait_after(exc)`` says how long to wait before the next attempt, or re-raises
    ``exc`` (with a note saying why) when the call must give up.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float],
        rand: Callable[[], float],
        retry_on: Callable[[BaseException], bool],
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._rand = rand
        self._retry_on = retry_on
        self._start = clock()
        self._attempt = 1

    def wait_after(self, exc: Exception) -> float:
        """Return the seconds to wait before trying again; raise ``exc`` to give up."""
        policy = self._policy
        attempt = self._attempt
        if not self._retry_on(exc):
            raise exc
        if attempt >= policy.max_attempts:
            exc.add_note(f"retry: gave up after {attempt} attempts")
            raise exc
        wait = policy.backoff(attempt, self._rand())
        spent = self._clock() - self._start
        if spent + wait > policy.budget:
            exc.add_note(
                f"retry: gave up after {attempt} attempts and {spent:.3f} s; "
                f"the next wait would pass the {policy.budget:g} s budget"
            )
            raise exc
        self._attempt += 1
        return wait


def note_not_replayed(
    exc: Exception, retry_on: Callable[[BaseException], bool], policy: RetryPolicy
) -> None:
    """Say on a retryable error why it was not retried: its stream could not be replayed."""
    if retry_on(exc):
        exc.add_note(
            "retry: not retried: the stream is longer than buffer_limit="
            f"{policy.buffer_limit} bytes and cannot be replayed"
        )


class Retry(Delegate):
    """Retry the inner store's operations that fail with a retryable error.

    Args:
        inner: The store to wrap; its capabilities are kept.
        policy: Attempts, backoff, budget and buffering.
        sleep: Waits a number of seconds (inject a fake in tests).
        clock: Monotonic seconds, for the budget.
        rand: Returns a float in [0, 1), for jitter.
        retry_on: Decides whether an error is worth retrying; by default a storager
            error whose ``retryable`` is true, or a ConnectionError or TimeoutError.

    ``append`` is never retried: a failed attempt may have appended already.
    Listings retry until their first page arrives, not in the middle.
    """

    combinator = "retry"

    def __init__(
        self,
        inner: Storager,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        retry_on: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        super().__init__(inner)
        self.policy = policy if policy is not None else RetryPolicy()
        if not isinstance(self.policy, RetryPolicy):
            raise InvalidArgumentError("new", "retry", "", "policy must be a RetryPolicy")
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._retry_on = retry_on
        #: Retries made so far (attempts beyond the first), for observation.
        self.retries = 0

    def describe_label(self) -> str:
        p = self.policy
        return f"retry attempts={p.max_attempts} budget={p.budget:g}s"

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        if op in _NEVER_RETRIED or single_attempt.get():
            return call_child(self._inner, op, path, fn)
        attempts = Attempts(self.policy, self._clock, self._rand, self._retry_on)
        while True:
            try:
                return call_child(self._inner, op, path, fn)
            except Exception as exc:
                self._sleep(attempts.wait_after(exc))
                self.retries += 1

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        return self._replaying("write", path, data, lambda s, d: s.write(path, d, **pairs))

    def _replaying(
        self, op: str, path: str, data: WriteData, run: Callable[[Storager, WriteData], T]
    ) -> T:
        """Run ``run(child, data)``, giving each attempt the data again from its start."""
        again, ok = replayable(op, "retry", path, data, self.policy.buffer_limit)
        if ok:
            return self._call(op, path, lambda s: run(s, again()))
        token = single_attempt.set(op)
        try:
            return self._call(op, path, lambda s: run(s, again()))
        except Exception as exc:
            note_not_replayed(exc, self._retry_on, self.policy)
            raise
        finally:
            single_attempt.reset(token)


class _RetrySegmenter(DelegateSegmenter, Retry):
    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        return self._replaying(
            "write_multipart",
            multipart.path,
            data,
            lambda s, d: cast(Segmenter, s).write_multipart(multipart, number, d, **pairs),
        )


Retry._capability_mixins = {**DELEGATE_MIXINS, Segmenter: _RetrySegmenter}
