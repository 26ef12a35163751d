"""The one place the redis service turns redis-py and socket errors into storager errors.

Reasons are fixed words, never the server's text about authentication (which could echo
a user name) and never a credential. A connection error or timeout while a commit is in
flight cannot tell whether the script ran, so :func:`map_commit_error` makes it
:class:`OutcomeUnknownError` unless the connection was never made.
"""

from __future__ import annotations

import logging
import re
import socket

from redis import exceptions as rx

from storager._errors import (
    InsufficientStorageError,
    InvalidArgumentError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    OutcomeUnknownError,
    PathInvalidError,
    PermissionDeniedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._service import map_os_error

__all__ = ["map_commit_error", "map_redis_error"]

logger = logging.getLogger("storager.services.redis")

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,31}")
# redis-py 8 says HELLO first (RESP2 too, when a user name is given): a server that wants
# a password answers this instead of NOAUTH.
_HELLO_NOAUTH = "must be called with the client already authenticated"


def _code(exc: rx.RedisError) -> str:
    """Return the error code the server put first (``WRONGTYPE``, ``OOM``...), or ``""``."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and status:
        return status
    text = str(exc.args[0]) if exc.args else ""
    first = text.split(" ", 1)[0]
    return first if _ERROR_CODE.fullmatch(first) else ""


def map_redis_error(exc: Exception, op: str, service: str, path: str) -> StorageError:
    """Return the storager error that ``exc``, raised by redis-py or a socket, means."""
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError) or (
        isinstance(exc, rx.RedisError) and _HELLO_NOAUTH in str(exc)
    ):
        return PermissionDeniedError(op, service, path, "authentication failed (credential)")
    if isinstance(exc, rx.NoPermissionError):
        return PermissionDeniedError(
            op, service, path, "the ACL user may not run this command or use this key"
        )
    if isinstance(exc, rx.OutOfMemoryError):
        return InsufficientStorageError(
            op, service, path, "the server is out of memory (maxmemory reached); nothing changed"
        )
    if isinstance(exc, rx.TimeoutError | socket.timeout | TimeoutError):
        return OperationTimeoutError(op, service, path)
    if isinstance(exc, rx.BusyLoadingError):
        return ServiceInternalError(op, service, path, "the server is loading its data")
    if isinstance(exc, rx.MaxConnectionsError | rx.MaxClientsReachedError):
        return ServiceInternalError(op, service, path, "no connection free (max_connections)")
    if isinstance(exc, rx.ConnectionError | ConnectionError):
        return ServiceInternalError(op, service, path, "cannot reach the server or lost it")
    if isinstance(exc, rx.RedisClusterException | rx.ClusterError):
        return ServiceInternalError(op, service, path, "the cluster is unreachable or down")
    if isinstance(exc, rx.ReadOnlyError):
        return ServiceInternalError(op, service, path, "the server is a read-only replica")
    if isinstance(exc, rx.TryAgainError | rx.AskError):
        return ServiceInternalError(op, service, path, "the cluster is moving a slot")
    if isinstance(exc, UnicodeError):
        shown = path.encode("utf-8", "backslashreplace").decode("utf-8")
        return PathInvalidError(op, service, shown, "path is not valid UTF-8")
    if isinstance(exc, rx.DataError):
        return InvalidArgumentError(op, service, path, "a value redis-py cannot send")
    if isinstance(exc, rx.RedisError):
        code = _code(exc)
        if code == "WRONGTYPE":
            return ObjectModeInvalidError(
                op, service, path, "a key of the store holds another type (not a storager key?)"
            )
        if code in ("OOM", "MISCONF"):
            return InsufficientStorageError(op, service, path, f"the server refused ({code})")
        logger.debug("unmapped redis error in %s %s: %s", op, path, code or type(exc).__name__)
        return UnexpectedError(op, service, path, f"redis: {code or type(exc).__name__}")
    return map_os_error(exc, op, service, path)


def _never_connected(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection could not be made (so nothing was sent)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError | socket.gaierror):
            return True
        if isinstance(seen, rx.ConnectionError) and (
            "connecting to" in str(seen) or "No connection available" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def map_commit_error(exc: Exception, op: str, service: str, path: str) -> StorageError:
    """Like :func:`map_redis_error`, for a failure while a commit script was in flight."""
    mapped = map_redis_error(exc, op, service, path)
    if isinstance(mapped, OperationTimeoutError | ServiceInternalError) and not (
        _never_connected(exc) or isinstance(exc, rx.ResponseError)
    ):
        return OutcomeUnknownError(
            op,
            service,
            path,
            "the connection failed while the change was in flight: it may have taken "
            "effect; stat or read before acting on the object",
        )
    return mapped
