"""S3's XML answers, parsed with the standard library (``xml.etree``'s C parser).

A ListObjectsV2 page is the one large answer (1,000 keys, ~200-300 KiB); only the
fields the service uses are read from it, by ``_list_scan`` when the page has the usual
shape and by ``xml.etree`` otherwise. The other answers are a few fields.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from urllib.parse import unquote_plus

from storager.services.s3._list_scan import RawEntry, RawPage, scan_list_page, xml_text
from storager.services.s3._transport import Listed, ListPage, UploadedPart

__all__ = [
    "complete_body",
    "delete_body",
    "list_page_of",
    "next_token",
    "parse_delete_failures",
    "parse_fields",
    "parse_list_page",
    "parse_parts",
    "tree_list_page",
]

_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_fields(body: bytes | bytearray | memoryview) -> tuple[str, dict[str, str]]:
    """Return the root element's name and its children's texts (``Code``, ``ETag``...)."""
    root = ET.fromstring(bytes(body))
    return _local(root.tag), {_local(child.tag): child.text or "" for child in root}


_UNSEEN = datetime.min


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def parse_list_page(body: bytes | bytearray | memoryview) -> ListPage:
    """Parse a ListObjectsV2 answer sent with ``encoding-type=url``.

    ``_list_scan`` reads pages in the usual shape (~1 ms for 1,000 keys); anything else
    is parsed with ``xml.etree`` (~4 ms: the C tree builder, then ``findtext``). Both
    give the same texts, turned into entries here (benchmarks/S3.md, "Listing").
    """
    return list_page_of(scan_list_page(body) or tree_list_page(body))


def list_page_of(raw: RawPage) -> ListPage:
    """Turn a page's texts (from either reader) into keys, sizes, dates and ETags."""
    texts, prefix_texts, truncated, token = raw
    entries: list[Listed] = []
    # Servers send one LastModified for many keys: parse each distinct text once.
    dates: dict[str | None, datetime | None] = {None: None}
    for key, size, modified, etag, storage_class in texts:
        when = dates.get(modified, _UNSEEN)
        if when is _UNSEEN:
            when = dates[modified] = _iso(modified)
        entries.append(
            (
                unquote_plus(key) if "%" in key or "+" in key else key,
                int(size or 0),
                when,
                etag or None,
                storage_class or None,
            )
        )
    prefixes = [unquote_plus(prefix) for prefix in prefix_texts]
    next_page = token if truncated.strip() == "true" else None
    return ListPage(entries, prefixes, next_page or None)


def _unquoted(etag: str | None) -> str | None:
    return None if etag is None else etag.strip('"')


def tree_list_page(body: bytes | bytearray | memoryview) -> RawPage:
    """Read a ListObjectsV2 page's texts with ``xml.etree``: any well-formed shape."""
    root = ET.fromstring(bytes(body) if isinstance(body, memoryview) else body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    t_contents, t_prefixes = ns + "Contents", ns + "CommonPrefixes"
    t_key, t_size, t_etag = ns + "Key", ns + "Size", ns + "ETag"
    t_modified, t_class, t_prefix = ns + "LastModified", ns + "StorageClass", ns + "Prefix"
    entries: list[RawEntry] = []
    prefixes: list[str] = []
    for child in root:
        tag = child.tag
        if tag == t_contents:
            entries.append(
                (
                    child.findtext(t_key) or "",
                    child.findtext(t_size) or "",
                    child.findtext(t_modified),
                    _unquoted(child.findtext(t_etag)),
                    child.findtext(t_class),
                )
            )
        elif tag == t_prefixes:
            prefixes.append(child.findtext(t_prefix) or "")
    truncated = root.findtext(ns + "IsTruncated") or ""
    return entries, prefixes, truncated, root.findtext(ns + "NextContinuationToken")


_TRUNCATED = re.compile(rb"<IsTruncated>\s*true\s*</IsTruncated>")
_NEXT_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def next_token(body: bytes | bytearray | memoryview) -> str | None:
    """The continuation token of a ListObjectsV2 answer, found without parsing it.

    None when the page is the last, or when the token cannot be read this way (not
    UTF-8, a malformed entity): the caller then waits for :func:`parse_list_page`,
    which is the authority. Entities are resolved (SeaweedFS's token is the last key
    as it is, so ``&amp;`` and the like occur).
    """
    if _TRUNCATED.search(body) is None:
        return None
    found = _NEXT_TOKEN.search(body)
    if found is None:
        return None
    try:
        return xml_text(found.group(1).decode()) or None
    except (UnicodeDecodeError, ET.ParseError):
        return None


def parse_parts(body: bytes | bytearray | memoryview) -> tuple[list[UploadedPart], int | None]:
    """Parse a ListParts answer: the parts and the next marker (None on the last page)."""
    root = ET.fromstring(bytes(body))
    parts: list[UploadedPart] = []
    truncated = False
    marker = 0
    for child in root:
        tag = _local(child.tag)
        if tag == "Part":
            fields = {_local(c.tag): c.text or "" for c in child}
            parts.append(
                UploadedPart(
                    int(fields.get("PartNumber") or 0),
                    int(fields.get("Size") or 0),
                    fields.get("ETag", "").strip('"'),
                )
            )
        elif tag == "IsTruncated":
            truncated = (child.text or "").strip() == "true"
        elif tag == "NextPartNumberMarker":
            marker = int(child.text or 0)
    return parts, marker if truncated else None


def parse_delete_failures(body: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """Return ``(key, code)`` for each key a DeleteObjects answer reports as failed."""
    failed = []
    for child in ET.fromstring(bytes(body)):
        if _local(child.tag) == "Error":
            fields = {_local(c.tag): c.text or "" for c in child}
            failed.append((fields.get("Key", ""), fields.get("Code", "")))
    return failed


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def complete_body(parts: list[tuple[int, str]] | tuple[tuple[int, str], ...]) -> bytes:
    """The CompleteMultipartUpload body for ``(number, etag)`` pairs."""
    items = "".join(
        f'<Part><PartNumber>{int(number)}</PartNumber><ETag>"{_text(etag)}"</ETag></Part>'
        for number, etag in parts
    )
    return (
        f'<CompleteMultipartUpload xmlns="{_NAMESPACE}">{items}</CompleteMultipartUpload>'
    ).encode()


def delete_body(keys: list[str] | tuple[str, ...]) -> bytes:
    """The DeleteObjects body (quiet: only failures are reported)."""
    items = "".join(f"<Object><Key>{_text(key)}</Key></Object>" for key in keys)
    return f"<Delete><Quiet>true</Quiet>{items}</Delete>".encode()
