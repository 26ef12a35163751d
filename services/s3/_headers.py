"""The one place pairs become S3 request headers.

The generated methods have already refused any header-bound pair holding a control
character or non-ASCII text (``storager._headers.check_header``); the HTTP writer
refuses such a character in any header once more before sending
(``_connections``). Both transports take the headers built here: the HTTP transport
sends them as they are, the s3fs transport turns them into botocore's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["META_PREFIX", "object_headers"]

#: User metadata travels as headers named with this prefix.
META_PREFIX = "x-amz-meta-"


def object_headers(
    *,
    content_type: str | None = None,
    storage_class: str | None = None,
    server_side_encryption: str | None = None,
    user_metadata: Mapping[str, str] | None = None,
    content_md5: str | None = None,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> dict[str, str]:
    """Return the wire headers (lower-case names) of the pairs that are set."""
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if storage_class is not None:
        headers["x-amz-storage-class"] = storage_class
    if server_side_encryption is not None:
        headers["x-amz-server-side-encryption"] = server_side_encryption
    if user_metadata:
        for name, value in user_metadata.items():
            headers[META_PREFIX + name.lower()] = value
    if content_md5 is not None:
        headers["content-md5"] = content_md5
    if if_match is not None:
        headers["if-match"] = if_match
    if if_none_match is not None:
        headers["if-none-match"] = if_none_match
    return headers
