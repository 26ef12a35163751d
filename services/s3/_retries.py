"""The s3 service's one retry layer: each request, under a core ``RetryPolicy``.

Both transports send every request through :func:`retrying`. A request is tried again
when its failure is worth it (:func:`worth_retrying`): S3 throttling (``SlowDown``,
429, 503), other 5xx answers and connection failures; never an answer that will not
change (404, 403, 412...), a certificate that does not verify, or a request refused
before sending. Waits follow the policy's backoff with jitter, within its budget.

The default, :data:`REQUEST_RETRY`, is a few quick attempts, as boto3 and obstore make.
A store wrapped in the ``Retry`` combinator would multiply attempts (Retry's 5 times
these 3): set ``store.request_retry = RetryPolicy(max_attempts=1)`` so Retry is the
only layer. Every error that gave up after more than one attempt carries a note
saying how many were made.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import time
from collections.abc import Callable
from typing import TypeVar

import botocore.exceptions

from storager._retry_policy import RetryPolicy
from storager.services.s3._connections import TRANSPORT_ERRORS, UnsafeRequestError
from storager.services.s3._errors import client_error_code, find_client_error
from storager.services.s3._transport import S3Answer

__all__ = ["REQUEST_RETRY", "retrying", "worth_retrying"]

logger = logging.getLogger("storager.services.s3")

T = TypeVar("T")

#: Attempts per request unless the store is told otherwise: 3, full jitter, 30 s budget.
REQUEST_RETRY = RetryPolicy(max_attempts=3, jitter=1.0)

_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestThrottled",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalError",
    }
)


def _answer_worth_retrying(code: str, status: int) -> bool:
    return status >= 500 or status == 429 or code in _THROTTLE_CODES


def worth_retrying(exc: BaseException) -> bool:
    """Whether the same request may succeed if sent again."""
    if isinstance(exc, S3Answer):
        return _answer_worth_retrying(exc.code, exc.status)
    if isinstance(exc, UnsafeRequestError | ssl.SSLCertVerificationError):
        return False  # refused before sending / will not verify on a retry either
    client_error = find_client_error(exc)
    if client_error is not None:
        return _answer_worth_retrying(*client_error_code(client_error))
    if isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | http.client.HTTPException
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.HTTPClientError,
    ):
        return True
    # aiohttp's payload and connection errors (the s3fs transport), socket errors.
    return type(exc).__module__.startswith("aiohttp") or (
        isinstance(exc, TRANSPORT_ERRORS) and type(exc) is OSError
    )


def retrying(policy: RetryPolicy, send: Callable[[], T], what: str) -> T:
    """Return ``send()``, calling it again while it fails in a way worth retrying.

    The last failure is raised as it is (the transport maps it), with a note of the
    attempts made when there was more than one.
    """
    attempt = 0
    started = time.monotonic()
    while True:
        try:
            return send()
        except Exception as exc:
            attempt += 1
            wait = policy.backoff(attempt, random.random())
            if (
                attempt >= policy.max_attempts
                or not worth_retrying(exc)
                or time.monotonic() - started + wait > policy.budget
            ):
                if attempt > 1:
                    exc.add_note(f"s3: {what} gave up after {attempt} attempts")
                raise
            logger.debug("retrying %s after %s (attempt %d)", what, type(exc).__name__, attempt)
            time.sleep(wait)
