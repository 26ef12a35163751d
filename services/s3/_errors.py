"""The one place S3 errors become storager errors.

An S3 error answer is a code (``NoSuchKey``) and an HTTP status: :func:`error_for`
maps the code first, then the status. Both transports come here: the HTTP transport
with the :class:`~storager.services.s3._transport.S3Answer` it parsed, the s3fs
transport with botocore's ``ClientError``, which s3fs often wraps in
``FileNotFoundError``, ``PermissionError`` or a plain ``OSError`` (:func:`map_error`
finds it wherever it is). Without an answer, :func:`map_error` maps connection
failures, botocore's transport errors and finally the builtin OSError family.

Reasons are built from error codes, never from request details, so credentials cannot
leak into a message.
"""

from __future__ import annotations

import logging
from collections import deque

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._service import http_status_error, map_os_error
from storager.services.s3._connections import UnsafeRequestError
from storager.services.s3._transport import S3Answer

__all__ = ["client_error_code", "error_for", "find_client_error", "map_error", "unreachable"]

logger = logging.getLogger("storager.services.s3")

SERVICE = "s3"

_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NotFound", "404"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSecurity",
    "InvalidToken",
    "ExpiredToken",
    "AccountProblem",
    "NotSignedUp",
    "RequestTimeTooSkewed",
    "403",
    "401",
}
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "412"}
_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestThrottled",
    "ServiceUnavailable",
    "503",
    "429",
}
_INVALID = {
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "EntityTooLarge",
    "InvalidArgument",
    "InvalidRequest",
    "InvalidRange",
    "InvalidDigest",
    "BadDigest",
    "InvalidStorageClass",
    "InvalidEncryptionAlgorithmError",
    "KeyTooLongError",
    "MetadataTooLarge",
    "MalformedXML",
    "IncompleteBody",
    "MissingContentLength",
    "InvalidObjectState",
    "XAmzContentSHA256Mismatch",
    "400",
    "416",
}

# How each family reads in a message.
_WORDS = {
    "NoSuchKey": "not found",
    "NoSuchUpload": "no such multipart upload",
    "InvalidAccessKeyId": "access key not recognised",
    "SignatureDoesNotMatch": "signature does not match (wrong secret?)",
    "EntityTooSmall": "a part other than the last is smaller than 5 MiB",
    "EntityTooLarge": "object or part is too large",
    "InvalidPart": "a part was not uploaded or its etag does not match",
    "InvalidPartOrder": "parts are not in increasing order",
    "BadDigest": "content_md5 does not match the data",
    "InvalidDigest": "content_md5 is not a valid base64 MD5",
    "InvalidStorageClass": "storage class not supported",
}


def find_client_error(exc: BaseException) -> ClientError | None:
    """Return the botocore ClientError behind ``exc`` (itself, a cause, or an arg)."""
    seen: set[int] = set()
    # Breadth first, causes before contexts: the error an exception was raised *from*
    # says more than one it was raised while handling.
    todo: deque[BaseException] = deque([exc])
    while todo:
        current = todo.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ClientError):
            return current
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return None


def client_error_code(error: ClientError) -> tuple[str, int]:
    """Return a ClientError's S3 code and HTTP status (0 when absent)."""
    response = error.response or {}
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    try:
        status = int(status)
    except (TypeError, ValueError):
        status = 0
    return code, status


def map_error(exc: BaseException, op: str, path: str, bucket: str) -> StorageError:
    """Turn an error from s3fs, aiobotocore or botocore into a storager error.

    Args:
        exc: The error raised by the vendor library.
        op: The storager operation that failed.
        path: The store-absolute path it acted on.
        bucket: The store's bucket, named in NoSuchBucket reasons.
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, S3Answer):
        return error_for(exc.code, exc.status, op, path, bucket)
    client_error = find_client_error(exc)
    if client_error is not None:
        code, status = client_error_code(client_error)
        return error_for(code, status, op, path, bucket)
    return _from_transport(exc, op, path)


def error_for(code: str, status: int, op: str, path: str, bucket: str) -> StorageError:
    """Return the storager error an S3 error code and HTTP status mean."""
    words = _WORDS.get(code)
    tag = f" ({code})" if code and not code.isdigit() else f" (HTTP {status})" if status else ""

    def reason(default: str) -> str:
        return f"{words or default}{tag}"

    if code == "NoSuchBucket":
        return NotFoundError(op, SERVICE, path, f"bucket {bucket!r} does not exist (NoSuchBucket)")
    if code == "NoSuchUpload":
        return NotFoundError(op, SERVICE, path, reason("no such multipart upload"))
    if code in _NOT_FOUND or (not code and status == 404):
        return NotFoundError(op, SERVICE, path, reason("not found"))
    if code in _DENIED or (not code and status in (401, 403)):
        return PermissionDeniedError(op, SERVICE, path, reason("permission denied"))
    if code in _PRECONDITION or status == 412:
        return PreconditionFailedError(op, SERVICE, path, reason("precondition failed"))
    if code in _THROTTLED or status in (429, 503):
        return RateLimitedError(op, SERVICE, path, reason("rate limited"))
    if code in ("RequestTimeout", "408"):
        return OperationTimeoutError(op, SERVICE, path, reason("timed out"))
    if code in _INVALID or code.startswith("Invalid") or code.startswith("Malformed"):
        return InvalidArgumentError(op, SERVICE, path, reason("invalid argument"))
    if code in ("InternalError", "500"):
        return ServiceInternalError(op, SERVICE, path, reason("service internal error"))
    cls = http_status_error(status)
    if cls is not None:
        return cls(op, SERVICE, path, reason(cls.default_reason))
    logger.debug("unmapped s3 error in %s %s: code=%s status=%s", op, path, code, status)
    return UnexpectedError(op, SERVICE, path, reason("unexpected error"))


def _from_transport(exc: BaseException, op: str, path: str) -> StorageError:
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        # botocore's words name the provider and the missing variable, never a value.
        return PermissionDeniedError(op, SERVICE, path, f"no usable credentials found ({exc})")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return OperationTimeoutError(op, SERVICE, path, "timed out talking to the endpoint")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return ServiceInternalError(op, SERVICE, path, "cannot reach the endpoint")
    if isinstance(exc, UnsafeRequestError):
        # The HTTP writer refused a head that could add a header or smuggle a request.
        return InvalidArgumentError(op, SERVICE, path, f"request not sent: {exc}")

    if isinstance(exc, ParamValidationError):
        return InvalidArgumentError(op, SERVICE, path, "request parameters rejected by the client")
    if type(exc).__module__.startswith("aiohttp"):
        # Payload and connection errors from the transport: the call may succeed again.
        return ServiceInternalError(op, SERVICE, path, f"transport error ({type(exc).__name__})")
    if isinstance(exc, Exception):
        return map_os_error(exc, op, SERVICE, path)
    return UnexpectedError(op, SERVICE, path, type(exc).__name__)


def unreachable(exc: BaseException, op: str, path: str) -> StorageError:
    """Map a failure of the HTTP transport's own connection (no answer was had)."""
    if isinstance(exc, UnsafeRequestError):
        return InvalidArgumentError(op, SERVICE, path, f"request not sent: {exc}")
    if isinstance(exc, TimeoutError):
        return OperationTimeoutError(op, SERVICE, path, "timed out talking to the endpoint")
    return ServiceInternalError(
        op, SERVICE, path, f"cannot reach the endpoint ({type(exc).__name__})"
    )
