"""What a Mirror reports when targets disagree: MirrorError and its helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast, get_args

from storager._errors import (
    InvalidArgumentError,
    ObjectModeInvalidError,
    OutcomeUnknownError,
    PairInvalidError,
    StorageError,
)

__all__ = [
    "READ_MODES",
    "ROLLBACK_MODES",
    "WRITE_MODES",
    "FeedAborted",
    "MirrorError",
    "ReadMode",
    "RollbackMode",
    "WriteMode",
    "check_mode",
    "describe_error",
    "mirror_error",
    "take_callback",
]

#: How a change reaches the targets, which target answers reads, and what a failed
#: change does to the targets it already reached (the ``Mirror`` arguments).
WriteMode = Literal["sequential", "parallel"]
ReadMode = Literal["first", "race"]
RollbackMode = Literal["restore", "delete", "none"]
WRITE_MODES: tuple[WriteMode, ...] = get_args(WriteMode)
READ_MODES: tuple[ReadMode, ...] = get_args(ReadMode)
ROLLBACK_MODES: tuple[RollbackMode, ...] = get_args(RollbackMode)


class MirrorError(StorageError):
    """An operation failed on some of a Mirror's targets; the reason lists each outcome.

    A Mirror raises a subclass that also derives from the first target's error class
    (``MirrorError[ServiceInternalError]``...), so callers may catch either.

    Attributes:
        outcomes: Each target's outcome in words (``"ok (rolled back)"``...).
        errors: The exception each failed target raised.
    """

    default_reason = "mirror failed"

    def __init__(
        self,
        op: str,
        service: str = "mirror",
        path: str = "",
        reason: str = "",
        *,
        outcomes: Mapping[str, str] | None = None,
        errors: Mapping[str, BaseException] | None = None,
    ) -> None:
        self.outcomes = dict(outcomes or {})
        self.errors = dict(errors or {})
        if not reason and self.outcomes:
            reason = ", ".join(f"{name}: {what}" for name, what in self.outcomes.items())
        super().__init__(op, service, path, reason)
        if self.errors:
            # Trying again after an unknown outcome could apply the change twice.
            self.retryable = not any(
                isinstance(e, OutcomeUnknownError) for e in self.errors.values()
            ) and any(getattr(e, "retryable", False) for e in self.errors.values())


_error_classes: dict[type, type[MirrorError]] = {}


def mirror_error(
    op: str,
    path: str,
    outcomes: Mapping[str, str],
    errors: Mapping[str, BaseException],
    *,
    blame: Sequence[str] = (),
) -> MirrorError:
    """Build the MirrorError for ``errors``, also an instance of the first error's class.

    An OutcomeUnknownError comes first whatever the order: the caller must learn
    that some target may yet take the change, above any other failure. When the
    first error blames one of the paths in ``blame`` as invalid, the error names it.
    """
    unknown = [e for e in errors.values() if isinstance(e, OutcomeUnknownError)]
    first = unknown[0] if unknown else next(iter(errors.values()))
    base = type(first)
    cls: type[MirrorError] = MirrorError
    if issubclass(base, StorageError) and not issubclass(base, MirrorError):
        cls = _error_classes.get(base) or type(
            f"MirrorError[{base.__name__}]", (MirrorError, base), {"__module__": __name__}
        )
        _error_classes[base] = cls
    blamed = _blamed(first, blame)
    if blamed is not None:
        path = blamed  # name the argument the target found wrong (copy's destination...)
    err = cls(op, "mirror", path, outcomes=outcomes, errors=errors)
    err.__cause__ = first
    return err


def _blamed(first: BaseException, blame: Sequence[str]) -> str | None:
    """Return the path of ``blame`` that ``first`` names as wrong, if it names one.

    A target's PathInvalidError names the caller's path as given; its
    ObjectModeInvalidError (a name taken by the other kind) names the path resolved in
    the target, which ends with the caller's: the longest such path is the one meant.
    """
    if isinstance(first, InvalidArgumentError) and first.path in blame:
        return first.path
    if isinstance(first, ObjectModeInvalidError):
        named = first.path.rstrip("/")
        ends = [p for p in blame if p and ("/" + named).endswith("/" + p.strip("/"))]
        if ends:
            return max(ends, key=len)
    return None


def describe_error(exc: BaseException) -> str:
    """Return one target's failure in words."""
    return f"{type(exc).__name__}: {exc}"


class FeedAborted(StorageError):
    """Given to a target's feed when another target or the source failed."""

    default_reason = "cancelled: another target or the source failed"


def take_callback(op: str, path: str, pairs: dict[str, Any]) -> Callable[[int], None] | None:
    """Take the io_callback pair out of ``pairs``: the Mirror calls it once, not per target."""
    callback = pairs.pop("io_callback", None)
    if callback is not None and not callable(callback):
        raise PairInvalidError(op, "mirror", path, "pair 'io_callback' must be callable")
    return cast("Callable[[int], None] | None", callback)


def check_mode(op: str, name: str, value: object, modes: Sequence[str]) -> None:
    """Raise InvalidArgumentError unless ``value`` is one of ``modes``."""
    if value not in modes:
        raise InvalidArgumentError(
            op, "mirror", "", f"{name} must be one of {', '.join(modes)}, not {value!r}"
        )
