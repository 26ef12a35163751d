"""Retry: try an operation again when it failed with a retryable error.

Written once: ``storager/aio/combinators/_retry.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_retry.py`` from it. Backoff grows
exponentially with jitter, up to a number of attempts and a total time budget
(``Attempts``). Errors that are not retryable pass through at once. A write's data must
be replayable: bytes and seekable files are; any other stream (sync, or async on the
async side) is buffered up to ``RetryPolicy.buffer_limit`` bytes, and a longer one is
written once, not retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncSegmenter, AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, Part
from storager._protocols import Segmenter
from storager._retry_policy import RetryPolicy
from storager.aio.combinators._base import Call, call_child
from storager.aio.combinators._delegate import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateSegmenter,
)
from storager.aio.combinators._replay import replayable_async
from storager.combinators._attempts import Attempts, note_not_replayed
from storager.combinators._base import is_transient, single_attempt

__all__ = ["AsyncRetry"]

T = TypeVar("T")

#: Not idempotent: a failed attempt may have taken effect, so a retry could duplicate it.
_NEVER_RETRIED = frozenset({"append"})


class AsyncRetry(AsyncDelegate):
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
    Listings retry until their first page arrives, not in the middle. A write's (or a
    part's) data is given again to each attempt; a stream longer than
    ``policy.buffer_limit`` gets one attempt.
    """

    combinator = "retry"

    def __init__(
        self,
        inner: AsyncStorager,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        if op in _NEVER_RETRIED or single_attempt.get():
            return await call_child(self._inner, op, path, fn)
        attempts = Attempts(self.policy, self._clock, self._rand, self._retry_on)
        while True:
            try:
                return await call_child(self._inner, op, path, fn)
            except Exception as exc:
                await self._sleep(attempts.wait_after(exc))
                self.retries += 1

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        return await self._replaying("write", path, data, lambda s, d: s.write(path, d, **pairs))

    async def _replaying(
        self,
        op: str,
        path: str,
        data: AsyncWriteData,
        run: Callable[[AsyncStorager, AsyncWriteData], Awaitable[T]],
    ) -> T:
        """Run ``run(child, data)``, giving each attempt the data again from its start."""
        again, ok = await replayable_async(op, "retry", path, data, self.policy.buffer_limit)
        if ok:
            return await self._call(op, path, lambda s: run(s, again()))
        # One attempt, here and in any retry below: the rest of the stream is read once.
        token = single_attempt.set(op)
        try:
            return await self._call(op, path, lambda s: run(s, again()))
        except Exception as exc:
            note_not_replayed(exc, self._retry_on, self.policy)
            raise
        finally:
            single_attempt.reset(token)


class _AsyncRetrySegmenter(AsyncDelegateSegmenter, AsyncRetry):
    """A part's data is replayed as a write's is."""

    async def write_multipart(
        self, multipart: Multipart, number: int, data: AsyncWriteData, **pairs: Any
    ) -> Part:
        return await self._replaying(
            "write_multipart",
            multipart.path,
            data,
            lambda s, d: cast(AsyncSegmenter, s).write_multipart(multipart, number, d, **pairs),
        )


AsyncRetry._capability_mixins = {**ASYNC_DELEGATE_MIXINS, Segmenter: _AsyncRetrySegmenter}
