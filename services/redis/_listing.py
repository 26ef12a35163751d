"""Listing from the index: ordered pages of ZRANGEBYLEX, never KEYS or a SCAN.

Every path (files, and directory markers ending with ``/``) is a member of one Sorted
Set with score 0, so members sort by their UTF-8 bytes, which is the order of the paths'
code points. A page is ``ZRANGEBYLEX index (last (prefix\\xff LIMIT 0 n``: O(log N + n)
wherever it starts. In dir mode a subdirectory is listed once and its whole subtree
skipped by starting the next page after it, so a directory holding a million keys
below it costs one more page, not a million members. Each page's files are then
described by one pipeline of HMGETs on their manifests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from storager._object import Object, ObjectMode
from storager.services.redis._keys import Keys, lex_prefix_range
from storager.services.redis._link import Link
from storager.services.redis._manifest import parse_mtime

__all__ = ["PAGE_SIZE", "list_index"]

PAGE_SIZE = 1000
_AFTER_ALL = b"\xff"
_FIELDS = (b"kind", b"size", b"etag", b"mtime")


def list_index(
    link: Link,
    keys: Keys,
    prefix: bytes,
    *,
    dir_mode: bool,
    shown: Callable[[str], str],
    page_size: int = PAGE_SIZE,
) -> Iterator[Object]:
    """Yield the objects under ``prefix`` in order, a page at a time.

    Args:
        link: The link to Redis.
        keys: The namespace's keys.
        prefix: A store-absolute path prefix, as bytes; in dir mode it ends with ``/``.
        dir_mode: List one level (directories once, ending with ``/``) instead of
            every key.
        shown: Turns a store-absolute path into the path the caller sees.
        page_size: Members per ZRANGEBYLEX.
    """
    low, high = lex_prefix_range(prefix)
    while True:
        members: list[bytes] = link.call(
            "ZRANGEBYLEX", keys.index, low, high, "LIMIT", 0, page_size
        )
        if not members:
            return
        files: list[bytes] = []
        entries: list[tuple[bytes, bool]] = []
        skip_under: bytes | None = None
        for member in members:
            if skip_under is not None and member.startswith(skip_under):
                continue
            rest = member[len(prefix) :]
            if not rest:
                continue  # the marker of the listed directory itself
            if dir_mode:
                cut = rest.find(b"/")
                if cut != -1:
                    directory = prefix + rest[: cut + 1]
                    entries.append((directory, True))
                    skip_under = directory
                    continue
            elif member.endswith(b"/"):
                entries.append((member, True))
                continue
            entries.append((member, False))
            files.append(member)
        described = _describe(link, keys, files)
        for member, is_dir in entries:
            path = shown(member.decode("utf-8"))
            if is_dir:
                yield Object(path, ObjectMode.DIR)
                continue
            info = described.get(member)
            if info is not None:
                yield _file(path, info)
        if len(members) < page_size:
            return
        last = members[-1]
        if skip_under is not None and last.startswith(skip_under):
            low = b"(" + skip_under + _AFTER_ALL
        else:
            low = b"(" + last


def _describe(link: Link, keys: Keys, files: list[bytes]) -> dict[bytes, list[bytes | None]]:
    """HMGET the listing fields of each file's manifest, in one pipeline."""
    if not files:
        return {}
    replies = link.pipeline([("HMGET", keys.manifest(member), *_FIELDS) for member in files])
    described = {}
    for member, values in zip(files, replies, strict=True):
        # An index entry whose manifest is gone was deleted between the two steps.
        if values[0] == b"f":
            described[member] = values
    return described


def _file(path: str, values: list[bytes | None]) -> Object:
    _, size, etag, mtime = values
    return Object(
        path,
        ObjectMode.READ,
        content_length=int(size or 0),
        etag=etag.decode() if etag else None,
        last_modified=parse_mtime(mtime),
    )
