"""What an ETag says about an object's bytes: their MD5, or nothing.

S3, and the stores and clients that follow it, give a single-part object's ETag as the
hex MD5 of its content (32 hex digits, quoted on the wire). Any other tag says nothing
about the bytes: a multipart tag (``<md5 of the parts' MD5s>-<parts>``), a version
counter, a hash of the path and time. Clients check downloads and uploads against a
plain-MD5 tag (s3cmd refuses a PUT whose answer's tag is not the MD5 of what it sent),
and ``storager sync --checksum`` compares by it, so both sides read tags by this one rule.
"""

from __future__ import annotations

import re

__all__ = ["plain_md5"]

_PLAIN_MD5 = re.compile(r"[0-9a-fA-F]{32}")


def plain_md5(etag: str | None) -> str | None:
    """Return the MD5 an ETag states, as lowercase hex, or None when it states none.

    Quotes around the tag are ignored; a weak tag (``W/"..."``) states none.

    Example:
        >>> plain_md5('"9E107D9D372BB6826BD81D3542A419D6"')
        '9e107d9d372bb6826bd81d3542a419d6'
        >>> plain_md5("9e107d9d372bb6826bd81d3542a419d6-2") is None
        True
    """
    tag = (etag or "").strip('"')
    return tag.lower() if _PLAIN_MD5.fullmatch(tag) else None
