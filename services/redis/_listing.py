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
from dataclasses import dataclass

from storager._object import Object, ObjectMode
from storager.services.redis._keys import Keys, lex_prefix_range
from storager.services.redis._link import Command, Link
from storager.services.redis._manifest import parse_mtime

__all__ = ["PAGE_SIZE", "IndexWalk", "list_index"]

PAGE_SIZE = 1000
_AFTER_ALL = b"\xff"
_FIELDS = (b"kind", b"size", b"etag", b"mtime")


@dataclass(slots=True)
class IndexWalk:
    """Where a listing is in the index, and how each page of members becomes objects.

    The I/O (a ZRANGEBYLEX per page, then HMGETs of the page's files) is the caller's:
    :func:`list_index` does it through a sync link, the async store through its own.
    """

    keys: Keys
    prefix: bytes
    dir_mode: bool
    shown: Callable[[str], str]
    page_size: int = PAGE_SIZE
    low: bytes = b""
    high: bytes = b""
    done: bool = False

    def __post_init__(self) -> None:
        self.low, self.high = lex_prefix_range(self.prefix)

    def page_command(self) -> Command:
        """Return the ZRANGEBYLEX of the next page."""
        return ("ZRANGEBYLEX", self.keys.index, self.low, self.high, "LIMIT", 0, self.page_size)

    def split(self, members: list[bytes]) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
        """Take one page: return its entries (member, is_dir) and the files to describe.

        Also moves past the page (and past the subtree of a directory it ends in), or
        marks the walk done.
        """
        prefix = self.prefix
        files: list[bytes] = []
        entries: list[tuple[bytes, bool]] = []
        skip_under: bytes | None = None
        for member in members:
            if skip_under is not None and member.startswith(skip_under):
                continue
            rest = member[len(prefix) :]
            if not rest:
                continue  # the marker of the listed directory itself
            if self.dir_mode:
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
        if len(members) < self.page_size:
            self.done = True
        elif skip_under is not None and members[-1].startswith(skip_under):
            self.low = b"(" + skip_under + _AFTER_ALL
        else:
            self.low = b"(" + members[-1]
        return entries, files

    def describe_commands(self, files: list[bytes]) -> list[Command]:
        """Return the HMGETs of the listing fields of ``files``' manifests."""
        return [("HMGET", self.keys.manifest(member), *_FIELDS) for member in files]

    def objects(
        self,
        entries: list[tuple[bytes, bool]],
        files: list[bytes],
        replies: list[list[bytes | None]],
    ) -> Iterator[Object]:
        """Yield the page's objects, given the HMGET replies of its files."""
        # An index entry whose manifest is gone was deleted between the two steps.
        described = {
            member: values
            for member, values in zip(files, replies, strict=True)
            if values[0] == b"f"
        }
        for member, is_dir in entries:
            path = self.shown(member.decode("utf-8"))
            if is_dir:
                yield Object(path, ObjectMode.DIR)
                continue
            info = described.get(member)
            if info is not None:
                yield _file(path, info)


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
    walk = IndexWalk(keys, prefix, dir_mode, shown, page_size)
    while not walk.done:
        members: list[bytes] = link.call(*walk.page_command())
        if not members:
            return
        entries, files = walk.split(members)
        replies = link.pipeline(walk.describe_commands(files)) if files else []
        yield from walk.objects(entries, files, replies)


def _file(path: str, values: list[bytes | None]) -> Object:
    _, size, etag, mtime = values
    return Object(
        path,
        ObjectMode.READ,
        content_length=int(size or 0),
        etag=etag.decode() if etag else None,
        last_modified=parse_mtime(mtime),
    )
