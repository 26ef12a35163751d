"""Backend health: down after repeated failures, a cooldown, then a probe brings it back.

Every fragment read or write reports its outcome here. ``failures_to_down``
consecutive failures (a missing chunk is not a failure: the backend answered) mark
a backend down for ``cooldown`` seconds. Writes place no fragment on a down
backend and reads try it last. Once the cooldown has passed, the next caller that
asks whether the backend is up runs ``probe`` on it (one caller at a time; the
others see it down meanwhile): success brings it back, failure starts another
cooldown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from storager._errors import NotFoundError

__all__ = ["BackendHealth", "Health"]


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """One backend's state, as ``Striped.health()`` reports it.

    Attributes:
        name: The backend's name.
        up: Whether fragments are placed on it.
        failures: Consecutive failed calls.
        last_error: The latest failure (``"ServiceInternalError: ..."``), or None.
        down_for: Seconds left in its cooldown, when down.
        bytes_used: Bytes of chunks on it, as this store counted them (None until
            counted).
        quota: Its byte quota, or None.
    """

    name: str
    up: bool
    failures: int
    last_error: str | None
    down_for: float | None
    bytes_used: int | None
    quota: int | None

    def describe(self) -> str:
        """Return the state in a few words, as errors show it."""
        words = ["up" if self.up else f"down ({self.down_for or 0:.0f}s left)"]
        if self.bytes_used is not None:
            words.append(f"{self.bytes_used} bytes used")
        words.append(f"quota {self.quota}" if self.quota is not None else "no quota")
        if self.last_error:
            words.append(f"last error {self.last_error}")
        return ", ".join(words)


class _State:
    __slots__ = ("down_until", "failures", "last_error", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.last_error: str | None = None
        self.down_until: float | None = None
        self.probing = False


def describe_error(exc: BaseException) -> str:
    """Return ``Class: message`` of an error, cut to one line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Health:
    """The health of every backend of one store; thread-safe.

    Args:
        names: The backends.
        probe: Called with a backend's name to check it; raising means still down.
        failures_to_down: Consecutive failures that mark a backend down.
        cooldown: Seconds a backend stays down before it is probed.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        names: Iterable[str],
        probe: Callable[[str], None],
        *,
        failures_to_down: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._states = {name: _State() for name in names}
        self._probe = probe
        self._failures_to_down = failures_to_down
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()

    def ok(self, name: str) -> None:
        """Record a call that worked."""
        state = self._states[name]
        if state.failures or state.down_until is not None:
            with self._lock:
                state.failures = 0
                state.down_until = None

    def fail(self, name: str, exc: BaseException) -> None:
        """Record a call that failed; a missing object is not a failure."""
        if isinstance(exc, NotFoundError):
            self.ok(name)
            return
        state = self._states[name]
        with self._lock:
            state.failures += 1
            state.last_error = describe_error(exc)
            if state.failures >= self._failures_to_down and state.down_until is None:
                state.down_until = self._clock() + self._cooldown

    def mark_down(self, name: str, reason: str) -> None:
        """Mark ``name`` down for a cooldown now (an operator's or a test's decision)."""
        state = self._states[name]
        with self._lock:
            state.failures = max(state.failures, self._failures_to_down)
            state.last_error = reason
            state.down_until = self._clock() + self._cooldown

    def is_up(self, name: str) -> bool:
        """Return whether ``name`` is up, probing it once its cooldown has passed."""
        state = self._states[name]
        if state.down_until is None:
            return True
        with self._lock:
            if state.down_until is None:
                return True
            if state.probing or self._clock() < state.down_until:
                return False
            state.probing = True
        try:
            self._probe(name)
        except NotFoundError:
            self.ok(name)
        except Exception as exc:
            with self._lock:
                state.last_error = describe_error(exc)
                state.down_until = self._clock() + self._cooldown
        else:
            self.ok(name)
        finally:
            state.probing = False
        return state.down_until is None

    def report(self, name: str, bytes_used: int | None, quota: int | None) -> BackendHealth:
        """Return ``name``'s state (without probing it)."""
        state = self._states[name]
        with self._lock:
            down_for = None
            if state.down_until is not None:
                down_for = max(0.0, state.down_until - self._clock())
            return BackendHealth(
                name,
                state.down_until is None,
                state.failures,
                state.last_error,
                down_for,
                bytes_used,
                quota,
            )
