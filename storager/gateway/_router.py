"""The S3 router: an operation name from the method, the path's depth and the query.

S3 routes on the query's sub-resource names (``?uploads``, ``?delete``, ``?list-type=2``)
more than on the path, so a table lookup per depth is all the routing there is.
"""

from __future__ import annotations

from collections.abc import Mapping

from storager.gateway._errors import S3Error

__all__ = ["route"]

# Bucket-level sub-resources answered with a fixed document or NotImplemented.
_BUCKET_QUERIES: dict[tuple[str, str], str] = {
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versioning"): "GetBucketVersioning",
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "versions"): "ListObjectVersions",
    ("POST", "delete"): "DeleteObjects",
}
# Sub-resources S3 has and this gateway does not keep (acl, policy, tagging...).
_UNSUPPORTED = frozenset(
    {
        "acl",
        "policy",
        "tagging",
        "cors",
        "lifecycle",
        "encryption",
        "website",
        "logging",
        "notification",
        "replication",
        "object-lock",
        "retention",
        "legal-hold",
        "torrent",
        "restore",
        "select",
        "accelerate",
        "requestPayment",
        "ownershipControls",
        "publicAccessBlock",
        "intelligent-tiering",
        "analytics",
        "metrics",
        "inventory",
        "attributes",
    }
)


def route(method: str, bucket: str, key: str, query: Mapping[str, str], copy: bool) -> str:
    """Return the S3 operation a request names.

    Args:
        method: The HTTP method.
        bucket: The bucket from the path, or ``""`` for the service.
        key: The key from the path, or ``""`` for the bucket.
        query: The query's names (values unused here, except ``list-type``).
        copy: Whether ``x-amz-copy-source`` is present.

    Raises:
        S3Error: NotImplemented or MethodNotAllowed.
    """
    unsupported = _UNSUPPORTED.intersection(query)
    if unsupported:
        raise S3Error("NotImplemented", f"?{min(unsupported)} is not supported by this gateway")
    if not bucket:
        if method == "GET":
            return "ListBuckets"
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on the service")
    if not key:
        for name in query:
            found = _BUCKET_QUERIES.get((method, name))
            if found:
                return found
        if method == "GET":
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        operation = {
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
        }.get(method)
        if operation:
            return operation
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on a bucket")
    upload = "uploadId" in query
    if method == "PUT":
        if upload and "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "GET":
        return "ListParts" if upload else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if upload else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if upload:
            return "CompleteMultipartUpload"
    raise S3Error("MethodNotAllowed", f"{method} is not allowed on an object")
