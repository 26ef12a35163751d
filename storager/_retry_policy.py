"""How to retry: backoff, jitter, attempts and a time budget, shared by every retry loop.

The Retry combinator and the s3 service's lean request path both use it, so one policy
object means the same thing wherever a retry happens.
"""

from __future__ import annotations

import math
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
        _integer("max_attempts", self.max_attempts, least=1)
        _integer("buffer_limit", self.buffer_limit, least=0)
        _number("initial_backoff", self.initial_backoff, least=0)
        _number("multiplier", self.multiplier, least=1)
        _number("max_backoff", self.max_backoff, least=0)
        _number("jitter", self.jitter, least=0, most=1)
        _number("budget", self.budget, least=0)

    def backoff(self, retry: int, rand: float) -> float:
        """Return the wait before retry number ``retry`` (from 1), given a random [0, 1)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return base * (1 - self.jitter * rand)


def _invalid(name: str, value: object, rule: str) -> InvalidArgumentError:
    return InvalidArgumentError("new", "retry", "", f"{name} must be {rule}, not {value!r}")


def _integer(name: str, value: object, *, least: int) -> None:
    """Refuse anything but an int (not a bool, not a float) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _invalid(name, value, f"an int >= {least}")


def _number(name: str, value: object, *, least: float, most: float | None = None) -> None:
    """Refuse anything but a finite int or float in [least, most]."""
    rule = (
        f"a finite number >= {least:g}"
        if most is None
        else (f"a number from {least:g} to {most:g}")
    )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(name, value, rule)
    if not math.isfinite(value) or value < least or (most is not None and value > most):
        raise _invalid(name, value, rule)
