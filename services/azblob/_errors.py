"""The one place azblob turns Azure and adlfs errors into storager errors.

Azure reports an error code (``x-ms-error-code``, such as ``BlobNotFound``) and an HTTP
status. The code decides when it is known, the status otherwise. adlfs turns some
errors into ``FileNotFoundError`` and other ``OSError``; those go through the shared
OSError mapping. Reasons quote the Azure error code, never Azure's message (which can
quote request details), so no credential can reach an error's text.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._service import http_status_error, map_os_error

__all__ = ["error_code", "map_azure_error"]

logger = logging.getLogger("storager.services.azblob")

SERVICE = "azblob"

_BY_CODE: dict[str, type[StorageError]] = {
    "BlobNotFound": NotFoundError,
    "ContainerNotFound": NotFoundError,
    "ResourceNotFound": NotFoundError,
    "CannotVerifyCopySource": NotFoundError,
    "AuthorizationFailure": PermissionDeniedError,
    "AuthenticationFailed": PermissionDeniedError,
    "AuthorizationPermissionMismatch": PermissionDeniedError,
    "InsufficientAccountPermissions": PermissionDeniedError,
    "ConditionNotMet": PreconditionFailedError,
    "SourceConditionNotMet": PreconditionFailedError,
    "TargetConditionNotMet": PreconditionFailedError,
    "ServerBusy": RateLimitedError,
    "BlobAlreadyExists": AlreadyExistsError,
    "ContainerAlreadyExists": AlreadyExistsError,
    "InvalidBlobType": ObjectModeInvalidError,
    "InvalidRange": InvalidArgumentError,
    "OperationTimedOut": OperationTimeoutError,
}

# Azure answers 503 (ServerBusy) when it throttles; other statuses mean what they mean
# everywhere (storager._service.http_status_error).
_BY_STATUS: dict[int, type[StorageError]] = {503: RateLimitedError}


def error_code(exc: HttpResponseError) -> str:
    """Return Azure's error code for ``exc`` (``""`` when there is none)."""
    # The storage SDK sets error_code; azure-core's own errors may only carry the header.
    code = getattr(exc, "error_code", None)
    headers = getattr(exc.response, "headers", None)
    if code is None and headers is not None:
        code = headers.get("x-ms-error-code")
    if code is None:
        return ""
    return str(getattr(code, "value", code))


def map_azure_error(exc: BaseException, op: str, path: str) -> StorageError:
    """Return the storager error that ``exc``, raised by adlfs or Azure, means."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, HttpResponseError):
        return _map_http(exc, op, path)
    if isinstance(exc, ServiceRequestTimeoutError | ServiceResponseTimeoutError):
        return OperationTimeoutError(op, SERVICE, path)
    if isinstance(exc, ServiceRequestError):
        return ServiceInternalError(op, SERVICE, path, "cannot reach the service")
    if isinstance(exc, ServiceResponseError):
        return ServiceInternalError(op, SERVICE, path, "the connection broke")
    if isinstance(exc, AzureError):
        logger.debug("unmapped azblob error in %s %s: %s", op, path, type(exc).__name__)
        return UnexpectedError(op, SERVICE, path, type(exc).__name__)
    if isinstance(exc, OSError | TimeoutError):
        return map_os_error(exc, op, SERVICE, path)
    logger.debug("unmapped azblob error in %s %s: %s", op, path, type(exc).__name__)
    return UnexpectedError(op, SERVICE, path, type(exc).__name__)


def _map_http(exc: HttpResponseError, op: str, path: str) -> StorageError:
    code = error_code(exc)
    status = exc.status_code or 0
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or http_status_error(status)
    if cls is None and isinstance(exc, ClientAuthenticationError):
        cls = PermissionDeniedError
    if cls is None:
        logger.debug("unmapped azblob status %s (%s) in %s %s", status, code, op, path)
        cls = UnexpectedError
    detail = code or (f"HTTP {status}" if status else type(exc).__name__)
    return cls(op, SERVICE, path, f"{cls.default_reason} ({detail})")
