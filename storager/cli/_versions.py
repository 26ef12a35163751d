"""How the commands tell two versions of an object apart from what the stores report.

* :func:`whole_seconds`: a modification time to the second, the precision every store
  shares (S3 lists milliseconds but HEAD reports whole seconds);
* :func:`reported_md5`: the MD5 a store reports, as lowercase hex: ``content_md5`` is
  base64 (:class:`~storager.Object`), an ETag may be a plain hex MD5 (not a multipart
  ``...-N`` one; the rule is :func:`storager._etag.plain_md5`, the gateway's too).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from storager._etag import plain_md5
from storager._object import Object

__all__ = ["reported_md5", "whole_seconds"]


def whole_seconds(when: datetime) -> int:
    """Return ``when`` as whole seconds since the epoch."""
    return int(when.timestamp())


def reported_md5(obj: Object) -> str | None:
    """Return the object's MD5 in lowercase hex as its store reports it, or None."""
    if obj.content_md5:
        try:
            digest = base64.b64decode(obj.content_md5, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) == 16:
            return digest.hex()
    return plain_md5(obj.etag)
