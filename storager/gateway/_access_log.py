"""One structured access-log line per request, through stdlib logging.

The logger is ``storager.gateway.access``; the line reads ``key=value`` pairs and the
same values ride on the record as ``extra`` attributes (``request_id``, ``method``,
``bucket``, ``key``, ``operation``, ``status``, ``bytes``, ``duration_ms``), so a JSON
formatter can emit them as fields. The library installs no handler.
"""

from __future__ import annotations

import logging

__all__ = ["ACCESS_LOGGER", "log_request"]

ACCESS_LOGGER = logging.getLogger("storager.gateway.access")


def log_request(
    *,
    request_id: str,
    method: str,
    bucket: str,
    key: str,
    operation: str,
    status: int,
    sent: int,
    received: int,
    duration: float,
) -> None:
    """Log one finished request (status 499: the client went away first)."""
    if not ACCESS_LOGGER.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": request_id,
        "method": method,
        "bucket": bucket,
        "key": key,
        "operation": operation,
        "status": status,
        "bytes": sent,
        "bytes_in": received,
        "duration_ms": round(duration * 1000, 3),
    }
    ACCESS_LOGGER.info(
        " ".join(
            f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
            for name, value in fields.items()
        ),
        extra=fields,
    )
