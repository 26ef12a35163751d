"""Plain REST for curl users: ``/v1/{bucket}/{path}`` and JSON listings.

::

    PUT    /v1/{bucket}/{path}     the body becomes the object (streamed, atomic)
    GET    /v1/{bucket}/{path}     the object, or a Range of it (206)
    HEAD   /v1/{bucket}/{path}     its headers
    DELETE /v1/{bucket}/{path}     204, missing or not
    GET    /v1/{bucket}/?prefix=&delimiter=&cursor=&limit=   a JSON page

A page is ``{"objects": [{"key", "size", "etag", "last_modified"}], "prefixes": [...],
"cursor": "..." or null}``; pass ``cursor`` back for the next page. Errors are JSON
``{"error": CODE, "message": ...}`` with the S3 status. Requests carry the same
credentials as S3 ones: SigV4, or ``Authorization: Bearer SECRET`` with the secret of
one of the gateway's access keys.
"""

from __future__ import annotations

import json

from storager.gateway import _listing, _objects
from storager.gateway._bucket import Bucket
from storager.gateway._errors import S3Error
from storager.gateway._http import Request, Response
from storager.gateway._xml import iso

__all__ = ["REST_PREFIX", "error_response", "rest"]

REST_PREFIX = "/v1/"


async def rest(bucket: Bucket, req: Request) -> Response:
    """Answer a REST request whose bucket and key are already split out."""
    if not req.key:
        if req.method != "GET":
            raise S3Error("MethodNotAllowed", f"{req.method} is not allowed on a bucket")
        return await _page(bucket, req)
    handler = {
        "GET": _objects.get_object,
        "HEAD": _objects.head_object,
        "PUT": _objects.put_object,
        "DELETE": _objects.delete_object,
    }.get(req.method)
    if handler is None:
        raise S3Error("MethodNotAllowed", f"{req.method} is not allowed on an object")
    return await handler(bucket, req)


async def _page(bucket: Bucket, req: Request) -> Response:
    prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
    limit_text = req.query.get("limit", str(_listing.MAX_KEYS))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= _listing.MAX_KEYS:
        raise S3Error("InvalidArgument", "limit must be 1 to 1,000")
    cursor = req.query.get("cursor")
    after = _listing.untoken(cursor) if cursor else ""
    items, truncated = await bucket.run(
        _listing.collect_page, bucket, prefix, delimiter, after, int(limit_text)
    )
    objects = [
        {
            "key": item.key,
            "size": item.obj.content_length or 0,
            "etag": _objects.etag_value(item.obj),
            "last_modified": iso(item.obj.last_modified),
        }
        for item in items
        if item.obj is not None
    ]
    page = {
        "objects": objects,
        "prefixes": [item.key for item in items if item.obj is None],
        "cursor": _listing.token(items[-1].key) if truncated else None,
    }
    body = json.dumps(page).encode()
    return Response(200, [("Content-Type", "application/json")], body)


def error_response(error: S3Error) -> Response:
    """A REST error: JSON with the S3 code and message."""
    body = json.dumps({"error": error.code, "message": error.message}).encode()
    return Response(error.status, [("Content-Type", "application/json")], body)
