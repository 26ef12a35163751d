"""How to retry: backoff, jitter, attempts and a time budget, shared by every retry loop.

The Retry combinator and the s3 service's lean request path both use it, so one policy
object means the same thing wherever a retry happens.
"""

from __future__ import annotations

from dataclasses import dataclass

from storager._errors import InvalidArgumentError

__all__ = ["RetryPolicy"]


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
