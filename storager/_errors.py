"""The storager error tree.

Every error raised through the public API derives from :class:`StorageError`, which
carries the operation, the service and the path, and chains the vendor error as
``__cause__``. Subclasses also inherit the builtin exception Python code already
catches, so ``except FileNotFoundError`` keeps working::

    StorageError(Exception)
    ├── NotFoundError(FileNotFoundError)
    ├── PermissionDeniedError(PermissionError)
    ├── AlreadyExistsError(FileExistsError)
    ├── ObjectModeInvalidError
    ├── PreconditionFailedError
    ├── PairUnsupportedError(NotImplementedError)
    ├── CapabilityInsufficientError(NotImplementedError)
    ├── InvalidArgumentError(ValueError)
    │   ├── PairRequiredError
    │   ├── PairInvalidError
    │   ├── PathInvalidError
    │   └── ConnectionStringInvalidError
    ├── ServiceNotRegisteredError
    ├── RateLimitedError            (retryable)
    ├── ServiceInternalError        (retryable)
    ├── OperationTimeoutError(TimeoutError)   (retryable)
    ├── OutcomeUnknownError(TimeoutError)     (never retryable)
    └── UnexpectedError
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CapabilityInsufficientError",
    "ConnectionStringInvalidError",
    "InsufficientStorageError",
    "InvalidArgumentError",
    "NotFoundError",
    "ObjectModeInvalidError",
    "OperationTimeoutError",
    "OutcomeUnknownError",
    "PairInvalidError",
    "PairRequiredError",
    "PairUnsupportedError",
    "PathInvalidError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitedError",
    "ServiceInternalError",
    "ServiceNotRegisteredError",
    "StorageError",
    "UnexpectedError",
]


class StorageError(Exception):
    """Root of every storager error.

    The message reads ``{op} {service}:{path}: {reason}``, for example
    ``write s3:/dir/a.txt: permission denied``. The vendor error, when there is one,
    is chained as ``__cause__``.

    Attributes:
        op: The operation that failed (``"write"``, ``"read"``, ``"open"``...).
        service: The service's name (``"fs"``, ``"s3"``...), or ``""`` when no store
            was involved.
        path: The path the operation was given, or ``""``.
        reason: What went wrong, in a few words.
        retryable: Whether trying the same call again may succeed.
    """

    retryable: bool = False
    #: The words used when no reason is given.
    default_reason: str = "storage error"

    def __init__(self, op: str, service: str = "", path: str = "", reason: str = "") -> None:
        self.op = op
        self.service = service
        self.path = path
        self.reason = reason or self.default_reason
        super().__init__(self._message())

    def _message(self) -> str:
        where = (
            f"{self.service}:{self.path}"
            if self.service and self.path
            else self.service or self.path
        )
        head = f"{self.op} {where}" if where else self.op
        return f"{head}: {self.reason}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.op, self.service, self.path, self.reason))


class NotFoundError(StorageError, FileNotFoundError):
    """The object (or directory, or multipart upload) does not exist."""

    default_reason = "not found"


class PermissionDeniedError(StorageError, PermissionError):
    """The service refused the operation, or the store is read-only."""

    default_reason = "permission denied"


class AlreadyExistsError(StorageError, FileExistsError):
    """The object exists and the operation required that it did not."""

    default_reason = "already exists"


class ObjectModeInvalidError(StorageError):
    """The object's mode does not allow the operation (reading a directory...)."""

    default_reason = "object mode invalid for this operation"


class PreconditionFailedError(StorageError):
    """A condition the caller set (``if_match``...) does not hold; nothing changed."""

    default_reason = "precondition failed"


class PairUnsupportedError(StorageError, NotImplementedError):
    """A pair was given that the service does not accept for this operation."""

    default_reason = "pair unsupported"


class CapabilityInsufficientError(StorageError, NotImplementedError):
    """The store lacks the capability the operation needs."""

    default_reason = "capability insufficient"


class InvalidArgumentError(StorageError, ValueError):
    """An argument's value is wrong: nothing was touched."""

    default_reason = "invalid argument"


class PairRequiredError(InvalidArgumentError):
    """A pair the service needs to start was not given."""

    default_reason = "pair required"


class PairInvalidError(InvalidArgumentError):
    """A pair's value has the wrong type or is out of range."""

    default_reason = "pair invalid"


class PathInvalidError(InvalidArgumentError):
    """A path is malformed or points outside the store's root."""

    default_reason = "path invalid"


class ConnectionStringInvalidError(InvalidArgumentError):
    """A connection string could not be parsed (bad form, unknown key, bad value)."""

    default_reason = "connection string invalid"


class ServiceNotRegisteredError(StorageError):
    """No service is registered under the connection string's scheme."""

    default_reason = "service not registered"


class RateLimitedError(StorageError):
    """The service is throttling requests; retrying later may succeed."""

    retryable = True
    default_reason = "rate limited"


class ServiceInternalError(StorageError):
    """The service failed on its side (a 5xx); retrying may succeed."""

    retryable = True
    default_reason = "service internal error"


class OperationTimeoutError(StorageError, TimeoutError):
    """The operation did not finish before its deadline."""

    retryable = True
    default_reason = "timed out"


class OutcomeUnknownError(StorageError, TimeoutError):
    """A change passed its deadline after it could no longer be stopped.

    It may have taken effect, or may still take effect later: the caller must find
    out (``stat``, ``read``) before it acts on the object. Never retryable, so that
    Retry, Mirror and Failover do not take it for a clean failure.
    """

    retryable = False
    default_reason = "outcome unknown"


class InsufficientStorageError(StorageError, OSError):
    """No backend has room or health enough to place the data (quota, full, down).

    The message names the backends and their state; nothing was left behind.
    """

    default_reason = "insufficient storage"


class UnexpectedError(StorageError):
    """An error the service's error mapping did not recognise."""

    default_reason = "unexpected error"
