"""What Logged sends for each finished operation, shared by both forms of Logged.

Records go to ``logging.getLogger("storager.combinators.logged")`` (or the logger
given) with the fields in ``extra=``: ``operation``, ``path``, ``bytes``,
``duration`` (seconds), ``outcome`` (``"ok"`` or the error's class) and
``served_by`` (which child of the wrapped combinator answered, when it says).
Only these fields are logged: never pairs, data or credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from storager._object import Object, Part
from storager.combinators._base import served_by

__all__ = ["LOGGER", "Event", "Reporter", "moved_bytes"]

LOGGER = logging.getLogger("storager.combinators.logged")


@dataclass(frozen=True, slots=True)
class Event:
    """One finished operation, as given to Logged's callbacks.

    Attributes:
        operation: The operation's name.
        path: The path it was given.
        bytes: Bytes read or written, when the operation moves data.
        duration: Seconds it took.
        outcome: ``"ok"`` or the error's class name.
        served_by: The child that answered, when the wrapped store tells.
        error: The exception, on failure.
    """

    operation: str
    path: str
    bytes: int | None
    duration: float
    outcome: str
    served_by: str = ""
    error: BaseException | None = None


def moved_bytes(op: str, result: object) -> int | None:
    """Return the bytes an operation's result says it moved, if it says."""
    if isinstance(result, bytes):
        return len(result)
    if isinstance(result, Object) and op in ("write", "append", "complete_multipart"):
        return result.content_length
    if isinstance(result, Part):
        return result.size
    return None


class Reporter:
    """Where Logged (both forms) sends each finished operation: the log, the callbacks."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        on_success: Callable[[Event], None] | None,
        on_failure: Callable[[Event], None] | None,
    ) -> None:
        self._logger = logger
        self._level = level
        self._on_success = on_success
        self._on_failure = on_failure

    def failed(self, op: str, path: str, start: float, exc: Exception) -> None:
        """Report a failed operation."""
        event = Event(
            op, path, None, time.perf_counter() - start, type(exc).__name__, served_by.get(), exc
        )
        self._emit(logging.WARNING, event, self._on_failure)

    def succeeded(self, op: str, path: str, start: float, result: object, who: str) -> None:
        """Report a successful operation."""
        event = Event(op, path, moved_bytes(op, result), time.perf_counter() - start, "ok", who)
        self._emit(self._level, event, self._on_success)

    def _emit(self, level: int, event: Event, callback: Callable[[Event], None] | None) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level,
                "%s %s: %s in %.3f ms",
                event.operation,
                event.path,
                event.outcome,
                event.duration * 1000,
                extra={
                    "operation": event.operation,
                    "path": event.path,
                    "bytes": event.bytes,
                    "duration": event.duration,
                    "outcome": event.outcome,
                    "served_by": event.served_by,
                },
            )
        if callback is not None:
            try:
                callback(event)
            except Exception:
                self._logger.exception("callback for %s %s failed", event.operation, event.path)
