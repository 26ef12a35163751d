"""Presigned URLs in the older query form (``AWSAccessKeyId``, ``Signature``, ``Expires``).

boto3 and aws-cli still presign with it by default for us-east-1
(``generate_presigned_url`` without ``signature_version="s3v4"``), so the gateway
verifies it for presigned URLs only; requests signed in headers must use SigV4. The
string to sign is the AWS "REST authentication, query string" one::

    METHOD \\n Content-MD5 \\n Content-Type \\n Expires \\n x-amz-* lines  /bucket/key?sub-resources
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence

from storager.gateway._errors import S3Error

__all__ = ["is_presigned_v2", "verify_presigned_v2"]

# The query names that are part of the signed resource (botocore's list).
_SUB_RESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "cors",
        "defaultObjectAcl",
        "location",
        "logging",
        "partNumber",
        "policy",
        "requestPayment",
        "torrent",
        "versioning",
        "versionId",
        "versions",
        "website",
        "uploads",
        "uploadId",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "delete",
        "lifecycle",
        "tagging",
        "restore",
        "storageClass",
        "notification",
        "replication",
        "analytics",
        "metrics",
        "inventory",
        "select",
        "select-type",
        "object-lock",
    }
)


def is_presigned_v2(query: Mapping[str, str]) -> bool:
    """Whether the query carries an old-form presigned signature."""
    return "Signature" in query and "AWSAccessKeyId" in query


def verify_presigned_v2(
    method: str,
    raw_path: str,
    pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    *,
    now: float | None = None,
) -> str:
    """Verify an old-form presigned URL; return its access key.

    Raises:
        S3Error: AccessDenied (expired or malformed), InvalidAccessKeyId or
            SignatureDoesNotMatch.
    """
    query = dict(pairs)
    expires = query.get("Expires", "")
    if not expires.isdigit():
        raise S3Error("AccessDenied", "a presigned URL needs a numeric Expires")
    if (now if now is not None else time.time()) > int(expires):
        raise S3Error("AccessDenied", "the presigned URL has expired")
    access_key = query["AWSAccessKeyId"]
    secret = secret_for(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", "the access key does not exist")
    amz = sorted(
        (name.lower(), value) for name, value in pairs if name.lower().startswith("x-amz-")
    )
    subresources = sorted((name, value) for name, value in pairs if name in _SUB_RESOURCES)
    resource = raw_path
    if subresources:
        resource += "?" + "&".join(f"{n}={v}" if v else n for n, v in subresources)
    text = "\n".join(
        [
            method,
            query.get("content-md5", headers.get("content-md5", "")),
            query.get("content-type", headers.get("content-type", "")),
            expires,
            *(f"{name}:{value}" for name, value in amz),
            resource,
        ]
    )
    expected = base64.b64encode(
        hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha1).digest()
    ).decode()
    if not hmac.compare_digest(expected.encode(), query["Signature"].encode("utf-8", "replace")):
        raise S3Error(
            "SignatureDoesNotMatch",
            "the request signature does not match the one computed with the secret",
        )
    return access_key
