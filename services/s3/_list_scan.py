"""A fast reader of ListObjectsV2 pages in the shape S3 servers send, or None.

``xml.etree`` builds a whole tree of a 1,000-key page (~16,000 elements) to read five
fields of each ``<Contents>``, which was most of a listing's client time. This module
reads the same fields with one regular-expression ``findall`` over the decoded text,
but only for pages in the plain shape servers send: UTF-8 without carriage returns;
the ``<Contents>`` blocks in one run, each a sequence of text-only elements without
attributes or prefixes, the same sequence as the first block's; no entity in a block's
field (keys come URL-encoded; an ETag's quotes may be entities); no CDATA, comment,
DOCTYPE or processing instruction before or after the run; around the run, only the
root's own children, text-only (CommonPrefixes of one Prefix), so the run and the fields
read around it sit one level under ``<ListBucketResult>``, which closes the page; no
character XML 1.0 refuses and no ``]]>`` anywhere (xml.etree would fail the page).

Nothing of another shape is half-read: each block is matched whole, and the run's
``<`` count must equal the matches times the first block's, so a block that did not
match, or anything else between blocks, sends the page to the caller's ``xml.etree``
parse (None), which stays the authority. ``tests/services/test_s3_list_scan.py`` holds
both to the same answer on random pages with odd keys, entities and unusual shapes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import lru_cache

__all__ = ["RawEntry", "RawPage", "scan_list_page", "xml_text"]

#: One ``<Contents>`` as texts: (Key, Size, LastModified, ETag without its quotes,
#: StorageClass); None where the element is absent.
RawEntry = tuple[str, str, str | None, str | None, str | None]

#: (entries, common prefixes, IsTruncated text, NextContinuationToken text or None)
RawPage = tuple[list[RawEntry], list[str], str, str | None]

_FIELDS = ("Key", "Size", "LastModified", "ETag", "StorageClass")

_CHILD = re.compile(r"<(\w+)>[^<]*</\1>")
_TEXT = "([^<&]*)"
_ETAG = '(?:&#34;|&quot;|")?([^<&"]*)(?:&#34;|&quot;|")?'
# Around the blocks, texts may hold entities (SeaweedFS's token is the last key, as is).
_PREFIX = re.compile(r"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>\s*</CommonPrefixes>")
_TRUNCATED = re.compile(r"<IsTruncated>([^<]*)</IsTruncated>")
_TOKEN = re.compile(r"<NextContinuationToken>([^<]*)</NextContinuationToken>")
# Around the blocks, the root's children one level deep: text-only or empty elements
# (moto sends <Prefix/>) and CommonPrefixes of one Prefix, nothing nested further; the
# root closed, then the end.
_FLAT = (
    r"\s*(?:(?:<(\w+)>[^<]*</\1>|<\w+/>"
    r"|<CommonPrefixes>\s*<Prefix>[^<]*</Prefix>\s*</CommonPrefixes>)\s*)*"
)
_HEAD = re.compile(r"<ListBucketResult(?:\s[^<>]*)?>" + _FLAT)
_TAIL = re.compile(_FLAT + r"</ListBucketResult>\s*")
# The bytes XML 1.0 cannot hold (C0 controls but tab, newline and carriage return) and
# ``]``: a page's bytes less these are deleted in one pass, leaving what to look at.
_CONTROL_OR_BRACKET = bytes([*range(9), 11, 12, *range(14, 32), ord("]")])
_ORDINARY = bytes(b for b in range(256) if b not in _CONTROL_OR_BRACKET)


@lru_cache(maxsize=16)
def _contents_pattern(children: tuple[str, ...]) -> re.Pattern[str]:
    """A whole ``<Contents>`` with these children in this order, the fields captured."""
    parts = [r"<Contents>\s*"]
    for tag in children:
        if tag in _FIELDS:
            parts.append(f"<{tag}>{_ETAG if tag == 'ETag' else _TEXT}</{tag}>\\s*")
        else:
            parts.append(f"<{tag}>[^<]*</{tag}>\\s*")
    parts.append("</Contents>")
    return re.compile("".join(parts))


def _xml_refuses(body: bytes | bytearray) -> bool:
    """Whether ``body`` holds what makes xml.etree fail the page: a character XML 1.0
    cannot hold (a C0 control, U+FFFE, U+FFFF; a UTF-8 decode never yields a lone
    surrogate) or ``]]>`` in character data."""
    odd = body.translate(None, _ORDINARY)
    if odd and (odd.strip(b"]") or b"]]>" in body):
        return True
    return not body.isascii() and (b"\xef\xbf\xbe" in body or b"\xef\xbf\xbf" in body)


def _utf8_text(body: bytes | bytearray) -> tuple[str, int] | None:
    """The page as text and where its root element starts, if it is UTF-8."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    start = 0
    if text.startswith("<?xml"):
        start = text.find("?>") + 2
        declaration = text[:start]
        if "encoding" in declaration and "utf-8" not in declaration.lower():
            return None
    while text[start : start + 1].isspace():
        start += 1
    return text, start


def _first_block_children(block: str) -> tuple[str, ...] | None:
    """The first ``<Contents>``'s children, if they are text-only elements with the fields."""
    children = tuple(_CHILD.findall(block))
    if block.count("<") != 2 + 2 * len(children) or len(set(children)) != len(children):
        return None  # a nested or odd child, or a field twice
    if "Key" not in children or "Size" not in children:
        return None
    return children


def scan_list_page(body: bytes | bytearray | memoryview) -> RawPage | None:
    """Read a ListObjectsV2 page's fields as texts, or None if its shape is unusual."""
    raw = bytes(body) if isinstance(body, memoryview) else body
    decoded = None if _xml_refuses(raw) else _utf8_text(raw)
    if decoded is None:
        return None
    text, start = decoded
    if not text.startswith("<ListBucketResult", start) or "\r" in text:
        return None
    first = text.find("<Contents>")
    if first < 0:
        root_end = text.find(">", start) + 1
        return _page([], text[start:root_end], text[root_end:])
    end = text.rfind("</Contents>") + len("</Contents>")
    head, tail = text[start:first], text[end:]
    first_end = text.find("</Contents>", first) + len("</Contents>")
    children = _first_block_children(text[first:first_end])
    if children is None:
        return None
    rows = _contents_pattern(children).findall(text, first, end)
    if text.count("<", first, end) != len(rows) * (2 + 2 * len(children)):
        return None  # a block that did not match, or something between blocks
    return _page(_entries(rows, children), head, tail)


def _page(entries: list[RawEntry], head: str, tail: str) -> RawPage | None:
    """The page with its other fields, read from around the ``<Contents>`` run.

    Between blocks the ``<`` count vouches for the page; around them, anything that
    could hide or fake an element (CDATA, a comment, a DOCTYPE, a processing
    instruction), a ``Contents`` of another shape (attributes, a prefix), an element
    below the root's children, or a root never closed refuses it.
    """
    if any(odd in part for part in (head, tail) for odd in ("<!", "<?", "Contents")):
        return None
    if _HEAD.fullmatch(head) is None or _TAIL.fullmatch(tail) is None:
        return None  # an element nested deeper, or the root left open
    prefixes = _PREFIX.findall(head) + _PREFIX.findall(tail)
    truncated = _TRUNCATED.findall(head) + _TRUNCATED.findall(tail)
    token = _TOKEN.findall(head) + _TOKEN.findall(tail)
    counts = (
        (prefixes, "<CommonPrefixes"),
        (truncated, "<IsTruncated"),
        (token, "<NextContinuationToken"),
    )
    if any(len(found) != head.count(tag) + tail.count(tag) for found, tag in counts):
        return None  # one of them in another shape
    try:
        prefixes = [xml_text(prefix) for prefix in prefixes]
        # xml.etree's findtext reads the first of repeated elements: so does this.
        return (
            entries,
            prefixes,
            xml_text(truncated[0]) if truncated else "",
            xml_text(token[0]) if token else None,
        )
    except ET.ParseError:
        return None  # a malformed entity: xml.etree reports the page


def xml_text(text: str) -> str:
    """An element's raw text (no ``<``) with its entities resolved, as XML reads it.

    Raises:
        xml.etree.ElementTree.ParseError: A malformed or unknown entity.
    """
    if "&" not in text:
        return text
    return ET.fromstring(f"<t>{text}</t>").text or ""


# The sequences sent by SeaweedFS and by AWS (moto and MinIO alike): rows in these are
# rearranged by unpacking, any other sequence by index.
_SEAWEEDFS = ("Key", "ETag", "Size", "StorageClass", "LastModified")
_AWS = ("Key", "LastModified", "ETag", "Size", "StorageClass")


def _entries(rows: list[tuple[str, ...]], children: tuple[str, ...]) -> list[RawEntry]:
    if children == _SEAWEEDFS:
        return [(key, size, modified, etag, sclass) for key, etag, size, sclass, modified in rows]
    if children == _AWS:
        return [(key, size, modified, etag, sclass) for key, modified, etag, size, sclass in rows]
    fields = [tag for tag in children if tag in _FIELDS]
    at = {tag: i for i, tag in enumerate(fields)}
    k, s = at["Key"], at["Size"]
    m, e, c = at.get("LastModified"), at.get("ETag"), at.get("StorageClass")
    return [
        (
            row[k],
            row[s],
            None if m is None else row[m],
            None if e is None else row[e],
            None if c is None else row[c],
        )
        for row in rows
    ]
