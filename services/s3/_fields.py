"""Request and response fields that both request paths shape the same way."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from storager._errors import PairInvalidError

__all__ = ["EMPTY_MAP", "attributes", "parse_credential", "unquote_etag"]

#: The one empty mapping every Object without metadata shares.
EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


def unquote_etag(value: object) -> str | None:
    """Return an ETag without its quotes; None when the response has none."""
    return value.strip('"') if isinstance(value, str) else None


def parse_credential(credential: str) -> tuple[str, str]:
    """Return ``(access_key, secret_key)`` from ``hmac:ACCESS_KEY:SECRET_KEY``."""
    kind, _, rest = credential.partition(":")
    access, _, secret = rest.partition(":")
    if kind != "hmac" or not access or not secret:
        # Never echo the value: it may hold a secret.
        raise PairInvalidError(
            "new", "s3", "", "pair 'credential' must look like 'hmac:ACCESS_KEY:SECRET_KEY'"
        )
    return access, secret


def attributes(
    content_type: str | None,
    storage_class: str | None,
    server_side_encryption: str | None,
    user_metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Return the request fields an object is created with."""
    attrs: dict[str, Any] = {}
    if content_type is not None:
        attrs["ContentType"] = content_type
    if storage_class is not None:
        attrs["StorageClass"] = storage_class
    if server_side_encryption is not None:
        attrs["ServerSideEncryption"] = server_side_encryption
    if user_metadata:
        attrs["Metadata"] = dict(user_metadata)
    return attrs
