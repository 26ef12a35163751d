"""Multipart uploads: the store's own Segmenter, or parts under a reserved prefix.

A store with a Segmenter (memory, s3, Striped) takes the parts itself; Striped
completes by writing a manifest, so no data is copied. Any other store keeps each
upload under ``.storager-uploads/{upload id}/`` (a ``{number:05d}`` object per part)
and Complete streams the parts, in order, into one ``write`` of the key: atomic,
bounded memory, then the parts go. The prefix is hidden from listings and refused as
a key.

Either way each upload is noted in the store itself, by one object under
``.storager-uploads/notes/``, so every gateway process serving the store sees every
upload (ListMultipartUploads) and the expiry sweep finds those of a process that died.
The note's name carries what a listing needs: ``{upload id}.{start time}.{key}``, each
percent-encoded, so a listing is one store ``list`` and no reads however many uploads
there are. Its content (JSON) carries all of it too, and the write pairs a store without
a Segmenter applies on Complete; the name leaves the key out (``%``) when it would be
long, or the upload's path is not the usual one for its key, and then a listing reads
that one note. :class:`Uploads` remembers the uploads this process started, to find them
fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, unquote

from storager._errors import NotFoundError, StorageError
from storager._object import Multipart, Object, Part
from storager._protocols import Direr, Segmenter, Storager, WriteData
from storager._streams import iter_chunks
from storager.gateway._body import BATCH
from storager.gateway._keys import RESERVED_PREFIX

__all__ = [
    "DEFAULT_MAX_AGE",
    "NOTES",
    "PartStore",
    "ReservedParts",
    "SegmenterParts",
    "Started",
    "Upload",
    "Uploads",
    "part_store",
]

_log = logging.getLogger("storager.gateway")

#: How long an incomplete upload lives before the sweep aborts it.
DEFAULT_MAX_AGE = timedelta(hours=24)


class PartStore(Protocol):
    """The multipart half of a store: a Segmenter, or :class:`ReservedParts`."""

    def create_multipart(self, path: str, **pairs: Any) -> Multipart: ...

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part: ...

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object: ...

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None: ...

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]: ...

    def started(self) -> Iterator[Started]:
        """Every upload noted in the store, whichever process started it."""
        ...


@dataclass(frozen=True)
class Started:
    """An upload noted in a store: its key, its handle and when it began."""

    key: str
    multipart: Multipart
    initiated: datetime


#: Where the upload notes are, one object each.
NOTES = f"{RESERVED_PREFIX}notes/"
#: The longest note name that carries the key (file systems allow 255 bytes a name).
_NAME_MAX = 200
#: The name's key field when the key is to be read from the note's content.
_READ_ME = "%"
_STAMP = "%Y%m%dT%H%M%S%fZ"


def _id_field(upload_id: str) -> str:
    """The upload id as the name's first field: percent-encoded, dots too (the field
    separator), or a hash of it when long (``%h``, which no encoding produces)."""
    field = quote(upload_id, safe="").replace(".", "%2E")
    if len(field) > _NAME_MAX // 2:
        return "%h" + hashlib.sha256(upload_id.encode()).hexdigest()[:40]
    return field


def _note(
    store: Storager, multipart: Multipart, key: str, pairs: dict[str, Any], usual_path: str
) -> None:
    initiated = datetime.now(UTC)
    meta = {
        "id": multipart.upload_id,
        "path": key,
        "upload_path": multipart.path,
        "pairs": pairs,
        "initiated": initiated.isoformat(),
    }
    id_field = _id_field(multipart.upload_id)
    name = f"{id_field}.{initiated.strftime(_STAMP)}.{quote(key, safe='')}"
    readable = not id_field.startswith("%h") and multipart.path == usual_path
    if not readable or len(name) > _NAME_MAX:
        name = f"{id_field}.{initiated.strftime(_STAMP)}.{_READ_ME}"
    store.write(NOTES + name, json.dumps(meta).encode())


def _notes_of(store: Storager, upload_id: str) -> list[str]:
    """The paths of ``upload_id``'s note (one, or none once it is finished)."""
    return [obj.path for obj in store.list(f"{NOTES}{_id_field(upload_id)}.", list_mode="prefix")]


def _read_note(store: Storager, upload_id: str) -> dict[str, Any] | None:
    for path in _notes_of(store, upload_id):
        with contextlib.suppress(NotFoundError, ValueError):
            meta: dict[str, Any] = json.loads(store.read(path))
            if meta.get("id") == upload_id:
                return meta
    return None


def _forget(store: Storager, upload_id: str) -> None:
    for path in _notes_of(store, upload_id):
        with contextlib.suppress(NotFoundError):
            store.delete(path)


def _noted(store: Storager, usual_path: Callable[[str], str]) -> Iterator[Started]:
    """Every upload noted in ``store``: one ``list``; a note is read only when its name
    leaves something out."""
    for obj in store.list(NOTES, list_mode="prefix"):
        name = obj.path.rpartition("/")[2]
        id_field, _, rest = name.partition(".")
        stamp, _, key_field = rest.partition(".")
        try:
            if id_field.startswith("%h") or key_field == _READ_ME:
                meta = json.loads(store.read(obj.path))
                multipart = Multipart(meta["upload_path"], meta["id"])
                yield Started(meta["path"], multipart, datetime.fromisoformat(meta["initiated"]))
                continue
            key = unquote(key_field, errors="strict")
            initiated = datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)
            yield Started(key, Multipart(usual_path(key), unquote(id_field)), initiated)
        except (NotFoundError, ValueError, KeyError, TypeError):
            continue  # finished meanwhile, or not ours


class SegmenterParts:
    """A store's own Segmenter, with each upload noted under :data:`RESERVED_PREFIX`."""

    def __init__(self, store: Segmenter) -> None:
        self.segmenter = store
        self.store: Storager = store  # type: ignore[assignment]  # every Segmenter is a store

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        multipart = self.segmenter.create_multipart(path, **pairs)
        try:
            _note(self.store, multipart, path, {}, self.usual_path(path))
        except BaseException:
            with contextlib.suppress(Exception):
                self.segmenter.abort_multipart(multipart)
            raise
        return multipart

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        return self.segmenter.write_multipart(multipart, number, data, **pairs)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        return self.segmenter.list_multipart(multipart, **pairs)

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        obj = self.segmenter.complete_multipart(multipart, parts, **pairs)
        # The object has landed: a note that cannot be removed now must not turn that
        # into a failure (the client would retry into NoSuchUpload). The sweep removes
        # it later, when its abort finds nothing left to abort.
        try:
            _forget(self.store, multipart.upload_id)
        except StorageError as exc:
            _log.warning("upload %s completed but its note stays: %s", multipart.upload_id, exc)
        return obj

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        try:
            self.segmenter.abort_multipart(multipart, **pairs)
        except NotFoundError:
            # Already gone (completed, or expired by the backend): the note goes too, or
            # listings and the sweep would meet it forever.
            _forget(self.store, multipart.upload_id)
            raise
        _forget(self.store, multipart.upload_id)

    def usual_path(self, key: str) -> str:
        """The path of an upload of ``key`` (the store's own, absolute)."""
        return self.store.metadata().work_dir + key

    def started(self) -> Iterator[Started]:
        return _noted(self.store, self.usual_path)


#: The upload ids :meth:`ReservedParts.create_multipart` makes: 32 lowercase hex digits.
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class ReservedParts:
    """Multipart uploads over a plain store, kept under :data:`RESERVED_PREFIX`."""

    def __init__(self, store: Storager) -> None:
        self.store = store

    def _dir(self, multipart: Multipart) -> str:
        # The id comes from the client: anything but the form create_multipart makes
        # (".." or "a/../b" would name a folder outside the reserved prefix) is no upload.
        if not _UPLOAD_ID.fullmatch(multipart.upload_id):
            raise NotFoundError("multipart", "gateway", multipart.path, "no such upload")
        return f"{RESERVED_PREFIX}{multipart.upload_id}/"

    def _meta(self, multipart: Multipart) -> dict[str, Any]:
        meta = _read_note(self.store, multipart.upload_id)
        if meta is None:
            raise NotFoundError("multipart", "gateway", multipart.path, "no such upload")
        return meta

    def _check_open(self, multipart: Multipart) -> None:
        """Raise NotFoundError unless the upload is open (one ``list``, no read)."""
        if not _notes_of(self.store, multipart.upload_id):
            raise NotFoundError("multipart", "gateway", multipart.path, "no such upload")

    def usual_path(self, key: str) -> str:
        """The path of an upload of ``key`` (the key's own, relative)."""
        return key

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        multipart = Multipart(path, secrets.token_hex(16))
        _note(self.store, multipart, path, pairs, self.usual_path(path))
        return multipart

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        """Write the part, and beside it its ETag (the MD5 of its content, hex)."""
        self._check_open(multipart)
        path = f"{self._dir(multipart)}{number:05d}"
        digest = hashlib.md5(usedforsecurity=False)
        size = 0

        def pieces() -> Iterator[bytes]:
            nonlocal size
            for piece in iter_chunks("write_multipart", "gateway", path, data):
                digest.update(piece)
                size += len(piece)
                yield piece if isinstance(piece, bytes) else bytes(piece)

        self.store.write(path, pieces(), **pairs)
        etag = digest.hexdigest()
        self.store.write(path + ".etag", etag.encode())
        return Part(number, size, etag)

    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        self._check_open(multipart)
        folder = self._dir(multipart)
        parts = []
        for obj in self.store.list(folder, list_mode="prefix"):
            name = obj.path.rpartition("/")[2]
            if name.isdigit():
                try:
                    etag = self.store.read(f"{folder}{name}.etag").decode()
                except NotFoundError:
                    continue  # a part still being written
                parts.append(Part(int(name), obj.content_length or 0, etag))
        return iter(sorted(parts, key=lambda part: part.number))

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        meta = self._meta(multipart)
        folder = self._dir(multipart)

        def data() -> Iterator[bytes]:
            for part in parts:
                with self.store.open_reader(f"{folder}{part.number:05d}") as reader:
                    while piece := reader.read(BATCH):
                        yield piece

        obj = self.store.write(meta["path"], data(), **{**meta["pairs"], **pairs})
        self.abort_multipart(multipart)
        return obj

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        folder = self._dir(multipart)
        self._check_open(multipart)  # never delete a folder no open upload owns
        for obj in list(self.store.list(folder, list_mode="prefix")):
            self.store.delete(obj.path)
        if isinstance(self.store, Direr):  # stores with directories keep empty ones
            with contextlib.suppress(StorageError):
                self.store.delete(folder)
        _forget(self.store, multipart.upload_id)

    def started(self) -> Iterator[Started]:
        return _noted(self.store, self.usual_path)


def part_store(store: Storager) -> PartStore:
    """:class:`SegmenterParts` when the store is a Segmenter, else :class:`ReservedParts`."""
    if isinstance(store, Segmenter):
        return SegmenterParts(store)
    return ReservedParts(store)


@dataclass(frozen=True)
class Upload:
    """An upload this process started."""

    bucket: str
    key: str
    multipart: Multipart
    initiated: datetime


class Uploads:
    """The uploads this process started, by upload id (thread-safe)."""

    def __init__(self) -> None:
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def add(self, upload: Upload) -> None:
        with self._lock:
            self._uploads[upload.multipart.upload_id] = upload

    def get(self, upload_id: str) -> Upload | None:
        with self._lock:
            return self._uploads.get(upload_id)

    def drop(self, upload_id: str) -> None:
        with self._lock:
            self._uploads.pop(upload_id, None)

    def of_bucket(self, bucket: str) -> list[Upload]:
        with self._lock:
            found = [u for u in self._uploads.values() if u.bucket == bucket]
        return sorted(found, key=lambda u: (u.key, u.initiated))
