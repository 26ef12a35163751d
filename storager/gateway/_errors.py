"""S3 errors: the one place where storager errors become S3 error codes and statuses.

Every handler raises either a storager error (from the store) or an :class:`S3Error`
(from the gateway's own checks); :func:`s3_error_for` turns the first kind into the
second, so the mapping below is the whole of it.
"""

from __future__ import annotations

from storager._errors import (
    AlreadyExistsError,
    CapabilityInsufficientError,
    InsufficientStorageError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    PairUnsupportedError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
)
from storager._sigv4 import SigV4Error

__all__ = ["STATUS", "S3Error", "s3_error_for"]

#: The HTTP status of each S3 error code the gateway answers with.
STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InsufficientStorage": 507,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "MalformedXML": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "RequestTimeout": 400,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An S3 error answer: its code, a message for the client, and the HTTP status."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS.get(code, 400)
        super().__init__(f"{code}: {message}")


def s3_error_for(exc: BaseException, *, missing: str = "NoSuchKey") -> S3Error:
    """Return the S3 error answering ``exc``.

    Args:
        exc: What a handler raised.
        missing: The code for a missing thing (``NoSuchKey``, or ``NoSuchUpload`` in a
            multipart operation).
    """
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, SigV4Error):
        return S3Error(exc.code, exc.reason)
    if not isinstance(exc, StorageError):
        return S3Error("InternalError", "the gateway failed unexpectedly")
    reason = exc.reason
    if isinstance(exc, NotFoundError | ObjectModeInvalidError):
        return S3Error(missing, "the resource you requested does not exist")
    if isinstance(exc, PermissionDeniedError):
        return S3Error("AccessDenied", reason)
    if isinstance(exc, PreconditionFailedError | AlreadyExistsError):
        return S3Error("PreconditionFailed", "at least one of the preconditions did not hold")
    if isinstance(exc, InvalidArgumentError):
        return S3Error("InvalidArgument", reason)
    if isinstance(exc, PairUnsupportedError | CapabilityInsufficientError):
        return S3Error("NotImplemented", reason)
    if isinstance(exc, RateLimitedError):
        return S3Error("SlowDown", "please reduce your request rate")
    if isinstance(exc, InsufficientStorageError):
        return S3Error("InsufficientStorage", reason)
    if isinstance(exc, OperationTimeoutError | ServiceInternalError):
        return S3Error("ServiceUnavailable", "the store is unavailable; retry")
    return S3Error("InternalError", "the store failed")
