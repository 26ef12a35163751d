"""S3's XML: rendering answers and parsing the two request bodies clients send.

Answers are built as text from escaped pieces (no tree): the shapes are fixed and small,
and a listing page of 1,000 keys renders in about a millisecond this way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from storager.gateway._errors import S3Error

__all__ = [
    "NS",
    "ListEntry",
    "check_query_text",
    "document",
    "element",
    "iso",
    "parse_complete",
    "parse_delete",
    "xml_illegal",
]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
#: The largest XML request body read (DeleteObjects of 1,000 long keys fits).
MAX_XML_BODY = 2 << 20
#: The characters XML 1.0 cannot hold, even as a character reference.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_illegal(text: str) -> str | None:
    """The first character of ``text`` that XML 1.0 cannot hold, or None."""
    if text.isprintable():  # every such character is unprintable: the usual fast answer
        return None
    found = _ILLEGAL.search(text)
    return None if found is None else found.group()


def check_query_text(query: Mapping[str, str], names: Iterable[str]) -> None:
    """Refuse, naming the parameter, a query value among ``names`` that an XML answer
    could not echo (a character XML 1.0 cannot hold): checked before any store call."""
    for name in names:
        char = xml_illegal(query.get(name, ""))
        if char is not None:
            raise S3Error(
                "InvalidArgument",
                f"the {name} parameter holds U+{ord(char):04X}, which XML 1.0 cannot carry",
            )


def iso(when: datetime | None) -> str:
    """An S3 timestamp: ISO 8601 in UTC with milliseconds."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def element(name: str, value: object, *, url: bool = False) -> str:
    """``<name>value</name>`` with the value escaped (and url-encoded when asked)."""
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if url:
        text = quote(text, safe="/")
    return f"<{name}>{escape(text)}</{name}>"


def document(root: str, parts: Iterable[str]) -> bytes:
    """A whole XML answer: the prolog and ``root`` (in S3's namespace) around ``parts``.

    The last line of defence behind the checks of the request: an answer holding a
    character XML 1.0 cannot carry (a stored key a listing sends as it is) would not
    parse, so it is refused; an error answer must still go out, so there each such
    character becomes U+FFFD.

    Raises:
        S3Error: InvalidArgument, naming the character, for an answer XML cannot carry.
    """
    text = f'{_PROLOG}<{root} xmlns="{NS}">{"".join(parts)}</{root}>'
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        body = b""
    if body and not _odd_bytes(body):
        return body
    char = xml_illegal(text)
    if char is None:
        return body
    if root == "Error":
        return _ILLEGAL.sub("\ufffd", text).encode()
    raise S3Error(
        "InvalidArgument",
        f"the answer would hold U+{ord(char):04X}, which XML 1.0 cannot carry"
        " (a listing can ask encoding-type=url)",
    )


#: Every byte but the C0 controls XML 1.0 refuses (tab, newline, carriage return pass).
_PLAIN_BYTES = bytes(b for b in range(256) if b >= 32 or b in (9, 10, 13))


def _odd_bytes(body: bytes) -> bool:
    """Whether ``body`` may hold a character XML 1.0 refuses (one pass; U+FFFE and
    U+FFFF are looked for only in a page that is not ASCII)."""
    if body.translate(None, _PLAIN_BYTES):
        return True
    return not body.isascii() and (b"\xef\xbf\xbe" in body or b"\xef\xbf\xbf" in body)


class ListEntry:
    """One key in a listing page."""

    __slots__ = ("etag", "key", "last_modified", "size")

    def __init__(self, key: str, size: int, etag: str, last_modified: datetime | None) -> None:
        self.key = key
        self.size = size
        self.etag = etag
        self.last_modified = last_modified


def _parse(body: bytes, root: str) -> ElementTree.Element:
    if len(body) > MAX_XML_BODY:
        raise S3Error("MalformedXML", "the XML body is too large")
    try:
        tree = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3Error("MalformedXML", "the XML body is not well formed") from None
    if _local(tree.tag) != root:
        raise S3Error("MalformedXML", f"the XML body's root must be {root}")
    return tree


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(node: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in node if _local(child.tag) == name]


def _text(node: ElementTree.Element, name: str) -> str | None:
    found = _children(node, name)
    return (found[0].text or "") if found else None


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """Parse a DeleteObjects body: the keys (at most 1,000) and whether it is quiet."""
    tree = _parse(body, "Delete")
    keys: list[str] = []
    for node in _children(tree, "Object"):
        key = _text(node, "Key")
        if key is None:
            raise S3Error("MalformedXML", "an Object has no Key")
        keys.append(key)
    if not keys or len(keys) > 1000:
        raise S3Error("MalformedXML", "DeleteObjects takes 1 to 1,000 keys")
    return keys, (_text(tree, "Quiet") or "").strip().lower() == "true"


def parse_complete(body: bytes) -> Sequence[tuple[int, str]]:
    """Parse a CompleteMultipartUpload body: ``(part number, etag)`` pairs in order."""
    tree = _parse(body, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for node in _children(tree, "Part"):
        number = (_text(node, "PartNumber") or "").strip()
        etag = (_text(node, "ETag") or "").strip().strip('"')
        if not number.isdigit():
            raise S3Error("MalformedXML", "a Part needs a PartNumber")
        parts.append((int(number), etag))
    if not parts:
        raise S3Error("MalformedXML", "CompleteMultipartUpload needs at least one Part")
    return parts
