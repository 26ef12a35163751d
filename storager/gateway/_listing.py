"""Listings: ListObjectsV2, ListObjects (v1), ListObjectVersions and ListBuckets.

A page is collected in one worker-thread call: the store's listing is read in key order
from the first key after the marker and stops one item past the page, so a page costs
the keys before it plus the page, never the whole bucket. With ``delimiter=/`` and a
prefix that is empty or ends in ``/`` the store lists one level (``list_mode="dir"``),
so a folder view never walks the folders below it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from storager._object import Object
from storager.gateway._bucket import Bucket
from storager.gateway._errors import S3Error
from storager.gateway._http import Request, Response
from storager.gateway._keys import RESERVED_PREFIX
from storager.gateway._objects import etag_of
from storager.gateway._xml import check_query_text, document, element, iso

__all__ = ["list_buckets", "list_object_versions", "list_objects", "list_objects_v2"]

MAX_KEYS = 1000
_XML = [("Content-Type", "application/xml")]


@dataclass(frozen=True, slots=True)
class Item:
    """A key (with its object) or a common prefix (``obj`` None) in a page."""

    key: str
    obj: Object | None


def _max_keys(req: Request, name: str = "max-keys") -> int:
    text = req.query.get(name, str(MAX_KEYS))
    if not text.isdigit():
        raise S3Error("InvalidArgument", f"{name} must be a non-negative whole number")
    return min(int(text), MAX_KEYS)


def _objects(bucket: Bucket, prefix: str, delimiter: str) -> Iterator[Object]:
    one_level = delimiter == "/" and (not prefix or prefix.endswith("/"))
    objects: Iterable[Object] = bucket.store.list(
        prefix, list_mode="dir" if one_level else "prefix"
    )
    if one_level or not bucket.sorted_listing:
        # One level of a store that sorts directories apart from files, or a store that
        # does not sort at all: S3 orders by the key text.
        objects = sorted(objects, key=lambda obj: obj.path)
    yield from objects


def collect_page(
    bucket: Bucket, prefix: str, delimiter: str, after: str, limit: int
) -> tuple[list[Item], bool]:
    """Return up to ``limit`` items after ``after``, and whether more follow."""
    if limit == 0:
        return [], False
    resumed = bucket.paused.take((prefix, delimiter, after)) if after else None
    if resumed is not None:
        try:
            return _page(bucket, resumed, prefix, delimiter, after, limit)
        except Exception:
            pass
    return _page(bucket, _objects(bucket, prefix, delimiter), prefix, delimiter, after, limit)


def _page(
    bucket: Bucket,
    objects: Iterator[Object],
    prefix: str,
    delimiter: str,
    after: str,
    limit: int,
) -> tuple[list[Item], bool]:
    items: list[Item] = []
    last_prefix = ""
    for obj in objects:
        key = obj.path
        if not key.startswith(prefix) or key.startswith(RESERVED_PREFIX):
            continue
        item: Item | None = None
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if common == last_prefix or common <= after:
                    continue
                last_prefix = common
                item = Item(common, None)
        if item is None:
            if key <= after:
                continue
            item = Item(key, obj)
        if len(items) == limit:
            rest = itertools.chain([obj], objects)
            bucket.paused.put((prefix, delimiter, items[-1].key), rest)
            return items, True
        items.append(item)
    return items, False


def _entry(item: Item, url: bool, *, version: bool = False) -> str:
    obj = item.obj
    assert obj is not None
    inner = [element("Key", item.key, url=url)]
    if version:
        inner += [element("VersionId", "null"), element("IsLatest", True)]
    inner += [
        element("LastModified", iso(obj.last_modified)),
        element("ETag", etag_of(obj)),
        element("Size", obj.content_length or 0),
        element("StorageClass", "STANDARD"),
    ]
    tag = "Version" if version else "Contents"
    return f"<{tag}>{''.join(inner)}</{tag}>"


def _body(items: list[Item], url: bool, *, version: bool = False) -> list[str]:
    parts = []
    for item in items:
        if item.obj is None:
            parts.append(
                "<CommonPrefixes>" + element("Prefix", item.key, url=url) + "</CommonPrefixes>"
            )
        else:
            parts.append(_entry(item, url, version=version))
    return parts


def _url_encoding(req: Request) -> bool:
    encoding = req.query.get("encoding-type")
    if encoding not in (None, "url"):
        raise S3Error("InvalidArgument", "encoding-type must be url")
    return encoding == "url"


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise S3Error("InvalidArgument", "the continuation token is not valid") from None


def _head(req: Request, bucket: Bucket, url: bool, limit: int) -> list[str]:
    prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
    parts = [element("Name", bucket.name), element("Prefix", prefix, url=url)]
    if delimiter:
        parts.append(element("Delimiter", delimiter, url=url))
    parts.append(element("MaxKeys", limit))
    if url:
        parts.append(element("EncodingType", "url"))
    return parts


async def list_objects_v2(bucket: Bucket, req: Request) -> Response:
    """ListObjectsV2."""
    check_query_text(req.query, ("prefix", "delimiter", "start-after", "continuation-token"))
    url = _url_encoding(req)
    limit = _max_keys(req)
    continuation = req.query.get("continuation-token")
    start_after = req.query.get("start-after", "")
    after = untoken(continuation) if continuation else start_after
    prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
    items, truncated = await bucket.run(collect_page, bucket, prefix, delimiter, after, limit)
    parts = _head(req, bucket, url, limit)
    parts += [element("KeyCount", len(items)), element("IsTruncated", truncated)]
    if continuation:
        parts.append(element("ContinuationToken", continuation))
    if start_after:
        parts.append(element("StartAfter", start_after, url=url))
    if truncated:
        parts.append(element("NextContinuationToken", token(items[-1].key)))
    parts += _body(items, url)
    return Response(200, list(_XML), document("ListBucketResult", parts))


async def list_objects(bucket: Bucket, req: Request) -> Response:
    """ListObjects (v1): ``marker`` and, when truncated, ``NextMarker``."""
    check_query_text(req.query, ("prefix", "delimiter", "marker"))
    url = _url_encoding(req)
    limit = _max_keys(req)
    marker = req.query.get("marker", "")
    prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
    items, truncated = await bucket.run(collect_page, bucket, prefix, delimiter, marker, limit)
    parts = _head(req, bucket, url, limit)
    parts += [element("Marker", marker, url=url), element("IsTruncated", truncated)]
    if truncated:
        parts.append(element("NextMarker", items[-1].key, url=url))
    parts += _body(items, url)
    return Response(200, list(_XML), document("ListBucketResult", parts))


async def list_object_versions(bucket: Bucket, req: Request) -> Response:
    """ListObjectVersions: the current objects, each as version ``null``."""
    check_query_text(req.query, ("prefix", "delimiter", "key-marker", "version-id-marker"))
    url = _url_encoding(req)
    limit = _max_keys(req)
    marker = req.query.get("key-marker", "")
    prefix, delimiter = req.query.get("prefix", ""), req.query.get("delimiter", "")
    items, truncated = await bucket.run(collect_page, bucket, prefix, delimiter, marker, limit)
    parts = _head(req, bucket, url, limit)
    parts += [
        element("KeyMarker", marker, url=url),
        element("VersionIdMarker", req.query.get("version-id-marker", "")),
        element("IsTruncated", truncated),
    ]
    if truncated:
        parts += [
            element("NextKeyMarker", items[-1].key, url=url),
            element("NextVersionIdMarker", "null"),
        ]
    parts += _body(items, url, version=True)
    return Response(200, list(_XML), document("ListVersionsResult", parts))


async def list_buckets(buckets: Iterable[Bucket]) -> Response:
    """ListBuckets: every served bucket."""
    owner = "<Owner>" + element("ID", "storager") + element("DisplayName", "storager") + "</Owner>"
    entries = "".join(
        "<Bucket>" + element("Name", b.name) + element("CreationDate", iso(b.created)) + "</Bucket>"
        for b in buckets
    )
    body = document("ListAllMyBucketsResult", [owner, f"<Buckets>{entries}</Buckets>"])
    return Response(200, list(_XML), body)
