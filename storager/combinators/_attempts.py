"""Retry's policy for one call, shared by both forms of Retry."""

from __future__ import annotations

from collections.abc import Callable

from storager._retry_policy import RetryPolicy

__all__ = ["Attempts", "note_not_replayed"]


class Attempts:
    """The retry policy of one call.

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
