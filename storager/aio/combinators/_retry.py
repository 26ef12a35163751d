"""AsyncRetry: Retry's policy (``storager.combinators._retry.Attempts``), awaited."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Object
from storager._protocols import WriteData
from storager._retry_policy import RetryPolicy
from storager.aio._native import _is_async
from storager.aio.combinators._base import AsyncDelegate, Call
from storager.combinators._base import is_transient, replayable, single_attempt
from storager.combinators._retry import Attempts

__all__ = ["AsyncRetry"]

T = TypeVar("T")

#: Not idempotent: a failed attempt may have taken effect, so a retry could duplicate it.
_NEVER_RETRIED = frozenset({"append"})


class AsyncRetry(AsyncDelegate):
    """Retry the inner async store's operations that fail with a retryable error.

    The twin of :class:`~storager.combinators.Retry`, with the same policy, arguments
    and rules (``append`` is never retried; a listing retries until its first item).
    ``sleep`` is awaited. A write's bytes, seekable file or short sync stream is
    given again to each attempt; an async source cannot be replayed and gets one attempt.
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
            return await fn(self._inner)
        attempts = Attempts(self.policy, self._clock, self._rand, self._retry_on)
        while True:
            try:
                return await fn(self._inner)
            except Exception as exc:
                await self._sleep(attempts.wait_after(exc))
                self.retries += 1

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        if _is_async(data):
            return await self._once("write", path, lambda s: s.write(path, data, **pairs))
        sync_data = cast(WriteData, data)
        again, ok = replayable("write", "retry", path, sync_data, self.policy.buffer_limit)
        if ok:
            return await self._call("write", path, lambda s: s.write(path, again(), **pairs))
        return await self._once("write", path, lambda s: s.write(path, again(), **pairs))

    async def _once(self, op: str, path: str, fn: Call[T]) -> T:
        """Run a call that cannot be replayed: one attempt, here and in any retry below."""
        token = single_attempt.set(op)
        try:
            return await self._call(op, path, fn)
        finally:
            single_attempt.reset(token)
