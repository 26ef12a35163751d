"""S3's XML answers, parsed with the standard library.

A ListObjectsV2 page is the one large answer (1,000 keys, ~300 KiB): it is parsed by
expat directly, keeping only the fields the service uses, without building a tree
(``xml.etree`` built a 1,000-key tree in ~5 ms; measured in benchmarks/S3.md). The
other answers are a few fields, read with ``xml.etree``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from urllib.parse import unquote_plus
from xml.parsers import expat

from storager.services.s3._transport import Listed, ListPage, UploadedPart

__all__ = [
    "complete_body",
    "delete_body",
    "parse_delete_failures",
    "parse_fields",
    "parse_list_page",
    "parse_parts",
]

_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_fields(body: bytes | bytearray | memoryview) -> tuple[str, dict[str, str]]:
    """Return the root element's name and its children's texts (``Code``, ``ETag``...)."""
    root = ET.fromstring(bytes(body))
    return _local(root.tag), {_local(child.tag): child.text or "" for child in root}


def _iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class _ListParser:
    """The expat handlers for one ListBucketResult (``encoding-type=url``)."""

    __slots__ = (
        "entries",
        "etag",
        "key",
        "modified",
        "prefixes",
        "size",
        "storage",
        "text",
        "token",
        "truncated",
    )

    def __init__(self) -> None:
        self.entries: list[Listed] = []
        self.prefixes: list[str] = []
        self.text = ""
        self.key = self.etag = self.storage = self.modified = ""
        self.size = "0"
        self.token = ""
        self.truncated = False

    def start(self, name: str, attrs: object) -> None:
        self.text = ""

    def data(self, text: str) -> None:
        self.text += text

    def end(self, name: str) -> None:
        # Children of <Contents> and <CommonPrefixes> end before their parent: their
        # texts are kept until the parent ends and builds the entry.
        if name == "Key":
            self.key = self.text
        elif name == "Size":
            self.size = self.text
        elif name == "ETag":
            self.etag = self.text
        elif name == "LastModified":
            self.modified = self.text
        elif name == "StorageClass":
            self.storage = self.text
        elif name == "Contents":
            key = self.key
            self.entries.append(
                (
                    unquote_plus(key) if "%" in key or "+" in key else key,
                    int(self.size or 0),
                    _iso(self.modified) if self.modified else None,
                    self.etag.strip('"') or None,
                    self.storage or None,
                )
            )
            self.key = self.etag = self.storage = self.modified = ""
            self.size = "0"
        elif name == "Prefix":
            self.key = self.text
        elif name == "CommonPrefixes":
            self.prefixes.append(unquote_plus(self.key))
            self.key = ""
        elif name == "IsTruncated":
            self.truncated = self.text.strip() == "true"
        elif name == "NextContinuationToken":
            self.token = self.text


def parse_list_page(body: bytes | bytearray | memoryview) -> ListPage:
    """Parse a ListObjectsV2 answer sent with ``encoding-type=url``."""
    handler = _ListParser()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = handler.start
    parser.EndElementHandler = handler.end
    parser.CharacterDataHandler = handler.data
    parser.Parse(bytes(body) if isinstance(body, memoryview) else body, True)
    token = handler.token if handler.truncated else ""
    return ListPage(handler.entries, handler.prefixes, token or None)


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
