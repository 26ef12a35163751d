"""The one place the gcs service turns gcsfs, HTTP and google-auth errors into storager errors.

gcsfs reports an HTTP failure in one of several shapes (``gcsfs.retry.validate_response``):

- 404: ``FileNotFoundError``;
- 403: ``OSError("Forbidden: ...")``;
- 412: ``FileExistsError`` (a failed precondition, such as ``ifGenerationMatch``);
- 502: ``requests.exceptions.ProxyError``;
- a message containing "invalid" (except 401): ``ValueError("Bad Request: ...")``;
- anything else: ``gcsfs.retry.HttpError`` with ``.code``.

Connection failures come from aiohttp, credential failures from google-auth. Vendor
messages are never copied into the storager error (they may quote URLs with tokens in
them); the vendor error stays available as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import google.auth.exceptions
import requests.exceptions
from gcsfs.retry import ChecksumError, HttpError

from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PreconditionFailedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._service import http_status_error, map_os_error

__all__ = ["map_gcs_error", "status_error"]

SERVICE = "gcs"

logger = logging.getLogger("storager.services.gcs")


def status_error(status: int, op: str, path: str) -> StorageError:
    """Return the storager error an HTTP status means for ``op`` on ``path``."""
    cls = http_status_error(status)
    if cls is None:
        return UnexpectedError(op, SERVICE, path, f"unexpected HTTP status {status}")
    if status == 401:
        reason = "not authenticated"
    elif status == 408:
        reason = "request timed out (408)"
    elif cls is ServiceInternalError:
        reason = f"service error ({status})"
    elif cls is InvalidArgumentError:
        reason = f"request refused ({status})"
    else:
        reason = cls.default_reason
    return cls(op, SERVICE, path, reason)


def map_gcs_error(exc: BaseException, op: str, path: str) -> StorageError:
    """Return the storager error for an exception raised by gcsfs or its dependencies."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, HttpError):
        if isinstance(exc.code, int):
            return status_error(exc.code, op, path)
        if isinstance(exc.code, str) and exc.code.isdigit():
            return status_error(int(exc.code), op, path)
        return UnexpectedError(op, SERVICE, path, "HTTP error without a status")
    if isinstance(exc, aiohttp.ClientResponseError):
        return status_error(exc.status, op, path)
    if isinstance(exc, FileExistsError):
        # gcsfs raises it for 412, and only then.
        return PreconditionFailedError(op, SERVICE, path)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(op, SERVICE, path)
    if isinstance(exc, requests.exceptions.ProxyError):
        # gcsfs turns a 502 into this.
        return ServiceInternalError(op, SERVICE, path, "bad gateway (502)")
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return PermissionDeniedError(op, SERVICE, path, "credentials refused or unavailable")
    if isinstance(exc, ChecksumError):
        return ServiceInternalError(op, SERVICE, path, "checksum mismatch in transfer")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError | aiohttp.ServerTimeoutError):
        return OperationTimeoutError(op, SERVICE, path)
    if isinstance(exc, aiohttp.ClientConnectionError | requests.exceptions.ConnectionError):
        return ServiceInternalError(op, SERVICE, path, "cannot reach the service")
    if isinstance(exc, ValueError) and str(exc).startswith("Bad Request"):
        return InvalidArgumentError(op, SERVICE, path, "request refused (400)")
    if type(exc) is OSError and str(exc).startswith("Forbidden"):
        return PermissionDeniedError(op, SERVICE, path)
    if isinstance(exc, Exception):
        return map_os_error(exc, op, SERVICE, path)
    logger.debug("unmapped gcs error in %s %s: %r", op, path, exc)
    return UnexpectedError(op, SERVICE, path, type(exc).__name__)
