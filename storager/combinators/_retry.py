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
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter, Storager, WriteData
from storager.combinators._base import (
    DELEGATE_MIXINS,
    Delegate,
    DelegateSegmenter,
    call_child,
    is_transient,
    replayable,
    single_attempt,
)

__all__ = ["Retry", "RetryPolicy"]

T = TypeVar("T")

#: Not idempotent: a failed attempt may have taken effect, so a retry could duplicate it.
_NEVER_RETRIED = frozenset({"append"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How :class:`Retry` retries.

    Attributes:
        max_attempts: Attempts in all, the first included (1 disables retrying).
        initial_backoff: Seconds to wait before the second attempt.
        multiplier: Each wait is this many times the one before.
        max_backoff: The longest single wait, in seconds.
        jitter: The fraction of each wait that is random (0: none; 1: "full jitter",
            anywhere from 0 to the wait), so that clients do not retry in lockstep.
        budget: Seconds from the first attempt after which no retry starts: a retry
            whose wait would end past the budget is not made.
        buffer_limit: Bytes of a one-shot stream buffered so a write can be retried.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.05
    multiplier: float = 2.0
    max_backoff: float = 2.0
    jitter: float = 0.5
    budget: float = 30.0
    buffer_limit: int = 8 << 20

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError("new", "retry", "", "max_attempts must be at least 1")
        if min(self.initial_backoff, self.max_backoff, self.budget, self.buffer_limit) < 0:
            raise InvalidArgumentError("new", "retry", "", "times and limits must not be negative")
        if not 0 <= self.jitter <= 1:
            raise InvalidArgumentError("new", "retry", "", "jitter must be between 0 and 1")
        if self.multiplier < 1:
            raise InvalidArgumentError("new", "retry", "", "multiplier must be at least 1")

    def backoff(self, retry: int, rand: float) -> float:
        """Return the wait before retry number ``retry`` (from 1), given a random [0, 1)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (1 - self.jitter * rand)


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
        policy = self.policy
        start = self._clock()
        attempt = 1
        while True:
            try:
                return call_child(self._inner, op, path, fn)
            except Exception as exc:
                if not self._retry_on(exc):
                    raise
                if attempt >= policy.max_attempts:
                    exc.add_note(f"retry: gave up after {attempt} attempts")
                    raise
                wait = policy.backoff(attempt, self._rand())
                spent = self._clock() - start
                if spent + wait > policy.budget:
                    exc.add_note(
                        f"retry: gave up after {attempt} attempts and {spent:.3f} s; "
                        f"the next wait would pass the {policy.budget:g} s budget"
                    )
                    raise
                self._sleep(wait)
                self.retries += 1
                attempt += 1

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
            if self._retry_on(exc):
                exc.add_note(
                    "retry: not retried: the stream is longer than buffer_limit="
                    f"{self.policy.buffer_limit} bytes and cannot be replayed"
                )
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
