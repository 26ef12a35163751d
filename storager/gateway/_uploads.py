"""Multipart uploads: the store's own Segmenter, or parts under a reserved prefix.

A store with a Segmenter (memory, s3, Striped) takes the parts itself; Striped
completes by writing a manifest, so no data is copied. Any other store keeps each
upload under ``.storager-uploads/{upload id}/`` (a ``{number:05d}`` object per part)
and Complete streams the parts, in order, into one ``write`` of the key: atomic,
bounded memory, then the parts go. The prefix is hidden from listings and refused as
a key.

Either way each upload is noted in the store itself by ``.storager-uploads/{upload
id}/meta`` (its key and start time), so every gateway process serving the store sees
every upload (ListMultipartUploads) and the expiry sweep finds those of a process that
died. :class:`Uploads` remembers the uploads this process started, to find them fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from storager._errors import NotFoundError, StorageError
from storager._object import Multipart, Object, Part
from storager._protocols import Direr, Segmenter, Storager, WriteData
from storager._streams import iter_chunks
from storager.gateway._body import BATCH
from storager.gateway._keys import RESERVED_PREFIX

__all__ = [
    "DEFAULT_MAX_AGE",
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


def _meta_path(upload_id: str) -> str:
    return f"{RESERVED_PREFIX}{upload_id}/meta"


def _note(store: Storager, multipart: Multipart, key: str, pairs: dict[str, Any]) -> None:
    meta = {
        "path": key,
        "upload_path": multipart.path,
        "pairs": pairs,
        "initiated": datetime.now(UTC).isoformat(),
    }
    store.write(_meta_path(multipart.upload_id), json.dumps(meta).encode())


def _forget(store: Storager, upload_id: str) -> None:
    with contextlib.suppress(NotFoundError):
        store.delete(_meta_path(upload_id))
    if isinstance(store, Direr):  # stores with directories keep empty ones
        with contextlib.suppress(StorageError):
            store.delete(f"{RESERVED_PREFIX}{upload_id}/")


def _noted(store: Storager) -> Iterator[Started]:
    for obj in store.list(RESERVED_PREFIX, list_mode="prefix"):
        if obj.path.endswith("/meta"):
            upload_id = obj.path[len(RESERVED_PREFIX) :].partition("/")[0]
            try:
                meta = json.loads(store.read(obj.path))
                multipart = Multipart(meta.get("upload_path", meta["path"]), upload_id)
                yield Started(meta["path"], multipart, datetime.fromisoformat(meta["initiated"]))
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
            _note(self.store, multipart, path, {})
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

    def started(self) -> Iterator[Started]:
        return _noted(self.store)


class ReservedParts:
    """Multipart uploads over a plain store, kept under :data:`RESERVED_PREFIX`."""

    def __init__(self, store: Storager) -> None:
        self.store = store

    def _dir(self, multipart: Multipart) -> str:
        return f"{RESERVED_PREFIX}{multipart.upload_id}/"

    def _meta(self, multipart: Multipart) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads(self.store.read(_meta_path(multipart.upload_id)))
        except NotFoundError:
            raise NotFoundError("multipart", "gateway", multipart.path, "no such upload") from None
        return meta

    def create_multipart(self, path: str, **pairs: Any) -> Multipart:
        multipart = Multipart(path, secrets.token_hex(16))
        _note(self.store, multipart, path, pairs)
        return multipart

    def write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, **pairs: Any
    ) -> Part:
        """Write the part, and beside it its ETag (the MD5 of its content, hex)."""
        self._meta(multipart)
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
        self._meta(multipart)
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
        for obj in list(self.store.list(folder, list_mode="prefix")):
            if not obj.path.endswith("/meta"):
                self.store.delete(obj.path)
        _forget(self.store, multipart.upload_id)

    def started(self) -> Iterator[Started]:
        return _noted(self.store)


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
