"""The manifest: the Hash that describes one object, how it is read and written.

Fields (all values bytes): ``kind`` (``f`` file, ``d`` directory marker), ``etag`` (new
on every change), ``mtime`` (server time, ``seconds.micros``), ``size``, ``ctype``,
``md5``, ``meta`` (user metadata as JSON), and either ``data`` (the bytes of a small,
inline object) or ``gen``, ``csize`` and ``chunks`` (the generation whose chunks hold
the bytes, the chunk size and count); ``exp`` (server time) when it was written with an
expiry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from storager._object import Object, ObjectMode

__all__ = ["STAT_FIELDS", "Manifest", "manifest_fields", "parse_mtime"]

#: What stat asks for, in this order.
STAT_FIELDS = (b"kind", b"etag", b"mtime", b"size", b"ctype", b"md5", b"meta")
_EMPTY: Mapping[str, str] = MappingProxyType({})


def parse_mtime(value: bytes | None) -> datetime | None:
    """Return a manifest's ``mtime`` (server time, ``seconds.micros``) as a UTC datetime."""
    return datetime.fromtimestamp(float(value), UTC) if value else None


@dataclass(frozen=True, slots=True)
class Manifest:
    """One object's manifest, as read."""

    kind: bytes
    etag: str
    mtime: datetime | None
    size: int
    content_type: str | None
    content_md5: str | None
    user_metadata: Mapping[str, str]

    @property
    def is_dir(self) -> bool:
        """Whether this is a directory marker."""
        return self.kind == b"d"

    @classmethod
    def parse(cls, values: Sequence[bytes | None]) -> Manifest | None:
        """Build a manifest from an HMGET of ``STAT_FIELDS``; None if there is none."""
        kind, etag, mtime, size, ctype, md5, meta = values
        if kind is None:
            return None
        return cls(
            kind=kind,
            etag=(etag or b"").decode(),
            mtime=parse_mtime(mtime),
            size=int(size or 0),
            content_type=ctype.decode() if ctype is not None else None,
            content_md5=md5.decode() if md5 is not None else None,
            user_metadata=MappingProxyType(json.loads(meta)) if meta else _EMPTY,
        )

    def to_object(self, path: str) -> Object:
        """Return the Object the caller sees at ``path`` (relative, as they gave it)."""
        if self.is_dir:
            return Object(path, ObjectMode.DIR, etag=self.etag, last_modified=self.mtime)
        return Object(
            path,
            ObjectMode.READ,
            content_length=self.size,
            content_type=self.content_type,
            content_md5=self.content_md5,
            etag=self.etag,
            last_modified=self.mtime,
            user_metadata=self.user_metadata,
        )


def manifest_fields(
    *,
    size: int,
    content_type: str | None,
    content_md5: str | None,
    user_metadata: Mapping[str, str] | None,
    data: bytes | bytearray | memoryview | None,
    generation: bytes | None,
    chunk_size: int,
    chunks: int,
) -> list[bytes | bytearray | memoryview]:
    """Return the field/value list of a file's manifest, less kind, etag and mtime."""
    fields: list[bytes | bytearray | memoryview] = [b"size", b"%d" % size]
    if content_type is not None:
        fields += [b"ctype", content_type.encode()]
    if content_md5 is not None:
        fields += [b"md5", content_md5.encode()]
    if user_metadata:
        fields += [b"meta", json.dumps(dict(user_metadata), ensure_ascii=True).encode()]
    if generation is not None:
        fields += [b"gen", generation, b"csize", b"%d" % chunk_size, b"chunks", b"%d" % chunks]
    else:
        fields += [b"data", data if data is not None else b""]
    return fields
