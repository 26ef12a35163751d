"""Request and response fields that both request paths shape the same way."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from storager._errors import PairInvalidError

__all__ = ["EMPTY_MAP", "attributes", "check_endpoint", "parse_credential", "unquote_etag"]

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


def _shown_endpoint(endpoint: str) -> str:
    """The endpoint as an error may show it: user info and query masked, repr, truncated."""
    scheme, sep, rest = endpoint.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    shown = f"{scheme}{sep}{rest}"
    for mark in ("?", "#"):
        if mark in shown:
            shown = shown.partition(mark)[0] + mark + "***"
    return repr(shown[:80]) + ("..." if len(shown) > 80 else "")


def check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint that is not ``http(s)://host[:port][/path]``.

    The port, when given, is 1 to 65535; user info (credentials belong in the
    ``credential`` pair), a query, a fragment and whitespace or control characters are
    refused. The error shows the endpoint with any user info and query masked.

    Raises:
        PairInvalidError: Naming the operation ``new``, the pair and the endpoint.
    """

    def refuse(what: str) -> PairInvalidError:
        return PairInvalidError(
            "new",
            "s3",
            "",
            f"pair 'endpoint' must be http(s)://host[:port] ({what}): {_shown_endpoint(endpoint)}",
        )

    if any(c.isspace() or not c.isprintable() for c in endpoint):
        raise refuse("it holds whitespace or a control character")
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError:
        raise refuse("the port must be a number from 1 to 65535") from None
    if url.scheme not in ("http", "https"):
        raise refuse(f"the scheme must be http or https, not {url.scheme[:16]!r}")
    if "@" in url.netloc:
        raise refuse("credentials belong in the credential pair, not the endpoint")
    if not url.hostname:
        raise refuse("the host is missing")
    if port == 0:
        raise refuse("the port must be a number from 1 to 65535")
    if url.query or url.fragment or endpoint.endswith(("?", "#")):
        raise refuse("a query or fragment is not allowed")


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
