"""Values returned by operations: objects, their modes, multipart parts, store metadata."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storager._capability import Capability

__all__ = ["Multipart", "Object", "ObjectMode", "Part", "StorageMeta"]

_EMPTY_STR: Mapping[str, str] = MappingProxyType({})
_EMPTY: Mapping[str, object] = MappingProxyType({})


class ObjectMode(enum.Flag):
    """What an object is; a flag, so an object may be several things at once."""

    READ = enum.auto()
    """A regular object whose content can be read."""
    DIR = enum.auto()
    """A directory (or a key ending in ``/`` on object stores)."""
    LINK = enum.auto()
    """A symbolic link to another path."""
    PART = enum.auto()
    """An object under construction through a multipart upload."""
    APPEND = enum.auto()
    """An object that can be appended to."""


@dataclass(frozen=True, slots=True)
class Object:
    """One object as a service reports it.

    Listing returns what the service gives cheaply; ``stat`` fills the rest. Fields a
    service did not report are ``None`` (never a guess).

    Attributes:
        path: The path as the caller would pass it back: relative to the store's
            ``work_dir`` when inside it, otherwise absolute (leading ``/``).
            Directories end with ``/``.
        mode: What the object is.
        content_length: Size in bytes.
        content_type: MIME type, when the service stores one.
        content_md5: Base64 MD5 of the content, when the service reports it.
        etag: The entity tag, without quotes.
        last_modified: Time of the last change, timezone-aware (UTC).
        user_metadata: Key/value metadata set by the user.
        system_metadata: Service-specific metadata (storage class...).
        link_target: For links, the path the link points to.
    """

    path: str
    mode: ObjectMode = ObjectMode.READ
    content_length: int | None = None
    content_type: str | None = None
    content_md5: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    # Mappings are compared but not hashed, so an Object stays hashable.
    user_metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY_STR, hash=False)
    system_metadata: Mapping[str, object] = field(default_factory=lambda: _EMPTY, hash=False)
    link_target: str | None = None

    @property
    def is_dir(self) -> bool:
        """Whether the object is a directory."""
        return ObjectMode.DIR in self.mode

    def __reduce__(self) -> tuple[object, ...]:
        # Read-only mapping proxies cannot be pickled: send plain dicts, wrap them again.
        fields = [getattr(self, name) for name in self.__slots__]
        fields[7] = dict(self.user_metadata)
        fields[8] = dict(self.system_metadata)
        return (_unpickle_object, tuple(fields))

    @classmethod
    def _quick(
        cls,
        path: str,
        mode: ObjectMode,
        content_length: int | None = None,
        last_modified: datetime | None = None,
        etag: str | None = None,
        system_metadata: Mapping[str, object] = _EMPTY,
    ) -> Object:
        """Build an Object from the fields a hot path knows; the rest take their defaults.

        Equal in every way to ``Object(path, mode, content_length=...,
        last_modified=..., etag=..., system_metadata=...)``, about four times faster: the
        dataclass ``__init__`` of a frozen class stores each of the ten fields through
        ``object.__setattr__`` (about 1.8 µs on Python 3.11), while this fills a mutable
        twin with the same slot layout by plain attribute stores and retags it as an
        Object. ``system_metadata`` is stored as given: pass a read-only mapping.
        """
        if cls is not Object:  # the retag is only valid for the exact layout below
            return cls(
                path,
                mode,
                content_length=content_length,
                etag=etag,
                last_modified=last_modified,
                system_metadata=system_metadata,
            )
        obj = _new(_ObjectSlots)
        obj.path = path
        obj.mode = mode
        obj.content_length = content_length
        obj.content_type = None
        obj.content_md5 = None
        obj.etag = etag
        obj.last_modified = last_modified
        obj.user_metadata = _EMPTY_STR
        obj.system_metadata = system_metadata
        obj.link_target = None
        obj.__class__ = Object  # type: ignore[assignment]
        return obj  # type: ignore[return-value]


class _ObjectSlots:
    """A mutable twin of Object: the same slots in the same order, for ``Object._quick``."""

    __slots__ = Object.__slots__
    path: str
    mode: ObjectMode
    content_length: int | None
    content_type: str | None
    content_md5: str | None
    etag: str | None
    last_modified: datetime | None
    user_metadata: Mapping[str, str]
    system_metadata: Mapping[str, object]
    link_target: str | None


_new = object.__new__


def _unpickle_object(*fields: object) -> Object:
    values = list(fields)
    values[7] = MappingProxyType(values[7])  # type: ignore[arg-type]
    values[8] = MappingProxyType(values[8])  # type: ignore[arg-type]
    return Object(*values)  # type: ignore[arg-type]


# Object._quick must fill every field: a field added to Object must be added there too.
_FIELDS = tuple(Object.__dataclass_fields__)
if _ObjectSlots.__slots__ != _FIELDS or _FIELDS[7:9] != ("user_metadata", "system_metadata"):
    raise RuntimeError("_ObjectSlots is out of step with Object's fields")


@dataclass(frozen=True, slots=True)
class Multipart:
    """A multipart upload in progress, as returned by ``Segmenter.create_multipart``."""

    path: str
    upload_id: str


@dataclass(frozen=True, slots=True)
class Part:
    """One uploaded part of a multipart upload.

    Attributes:
        number: The part's index, from 1; parts are joined in increasing order.
        size: Its length in bytes.
        etag: The service's tag for the part, needed to complete the upload.
    """

    number: int
    size: int
    etag: str = ""


@dataclass(frozen=True, slots=True)
class StorageMeta:
    """What a store is: its service, name, working directory and capability.

    Attributes:
        service: The service's name (``"fs"``, ``"s3"``...).
        name: The bucket, container or root the store works in (``""`` if none).
        work_dir: The absolute working directory inside the store, ending with ``/``.
        capability: The fine-grained capability (pairs per operation, features, limits).
    """

    service: str
    name: str
    work_dir: str
    capability: Capability
