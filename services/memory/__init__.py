"""The memory service: objects held in this store instance, safe across threads.

Every capability is implemented, so the whole conformance suite runs here without a
server; presigned URLs are served by a loopback HTTP server started on first use. An
object's bytes are held as the pieces they arrived in (``_content``): a completed
multipart upload or an append copies nothing already held.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import BinaryIO

from storager._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PathInvalidError,
    PreconditionFailedError,
)
from storager._object import Multipart, Object, ObjectMode, Part
from storager._protocols import IoCallback, WriteData
from storager._streams import BytesReader, iter_chunks
from storager.services.memory._content import Content, coalesce
from storager.services.memory._generated import MemoryGenerated
from storager.services.memory._presign import PresignServer

__all__ = ["MemoryStorage"]

_LINK_DEPTH_MAX = 8
_EMPTY_MAP: Mapping[str, str] = MappingProxyType({})
_EMPTY = Content(())


@dataclass(frozen=True, slots=True)
class _Entry:
    data: Content
    mode: ObjectMode
    etag: str
    modified: datetime
    content_type: str | None = None
    content_md5: str | None = None
    user_metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY_MAP)
    link_target: str | None = None


@dataclass(frozen=True, slots=True)
class _Part:
    """An uploaded part: its data as received (the object's pieces, on Complete) and its ETag."""

    chunks: tuple[bytes, ...]
    size: int
    etag: str


@dataclass(slots=True)
class _Upload:
    path: str
    content_type: str | None
    user_metadata: Mapping[str, str]
    parts: dict[int, _Part] = field(default_factory=dict)


class MemoryStorage(MemoryGenerated):
    """A store in this process's memory; see the module docstring.

    Example:
        >>> store = MemoryStorage()
        >>> store.write("a.txt", b"hi").content_length
        2
    """

    def _open(self) -> None:
        self._objects: dict[str, _Entry] = {}
        # How many keys lie under each directory prefix ("/a/" -> 2), kept with
        # _objects by _put and _pop: a directory exists while it has keys under it,
        # and the count answers that without a scan.
        self._under: dict[str, int] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.RLock()
        self._versions = itertools.count(1)
        self._presign: PresignServer | None = None

    def _close(self) -> None:
        if self._presign is not None:
            self._presign.stop()
            self._presign = None

    def _etag(self) -> str:
        return f"{next(self._versions):016x}"

    # -- Storager -----------------------------------------------------------------------

    def _resolve_entry(self, op: str, path: str) -> _Entry:
        """Return the entry at ``path``, following links, or raise NotFoundError."""
        for _ in range(_LINK_DEPTH_MAX):
            entry = self._objects.get(path)
            if entry is None:
                if path.endswith("/") or self._has_children(path + "/"):
                    raise ObjectModeInvalidError(op, "memory", path, "is a directory")
                raise NotFoundError(op, "memory", path)
            if entry.link_target is None:
                if ObjectMode.DIR in entry.mode:
                    raise ObjectModeInvalidError(op, "memory", path, "is a directory")
                return entry
            path = entry.link_target
        raise PathInvalidError(op, "memory", path, "too many levels of links")

    def _has_children(self, prefix: str) -> bool:
        return prefix in self._under

    def _put(self, path: str, entry: _Entry) -> None:
        """Store ``entry`` at ``path``, counting it under each of its directories."""
        if path not in self._objects:
            for parent in _parents(path):
                self._under[parent] = self._under.get(parent, 0) + 1
        self._objects[path] = entry

    def _pop(self, path: str) -> _Entry | None:
        """Remove and return the entry at ``path``, if any."""
        entry = self._objects.pop(path, None)
        if entry is not None:
            for parent in _parents(path):
                left = self._under[parent] - 1
                if left:
                    self._under[parent] = left
                else:
                    del self._under[parent]
        return entry

    def _check_name_free(self, op: str, path: str) -> None:
        """Raise unless an object may be put at ``path``: a file and a directory never
        share a name, and no parent of an object is a file (as on a file system)."""
        if path + "/" in self._under or path + "/" in self._objects:
            raise ObjectModeInvalidError(op, "memory", path, "a directory has this name")
        self._check_parents(op, path)

    def _check_parents(self, op: str, path: str) -> None:
        for parent in _parents(path):
            entry = self._objects.get(parent[:-1])
            if entry is not None and ObjectMode.DIR not in entry.mode:
                raise ObjectModeInvalidError(op, "memory", path, "a parent is not a directory")

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        with self._lock:
            content = self._resolve_entry("read", path).data
        start = offset or 0
        data = content.range(start, len(content) if size is None else start + size)
        if io_callback is not None:
            io_callback(len(data))
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        with self._lock:
            content = self._resolve_entry("open_reader", path).data
        start = offset or 0
        end = len(content) if size is None else start + size
        if len(content.pieces) == 1:
            return BytesReader(content.range(start, end))
        return content.reader(start, end)

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        content_md5: str | None,
        content_type: str | None,
        if_match: str | None,
        if_none_match: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        content = _collect("write", path, data, size, io_callback)
        if content_md5 is not None:
            actual = base64.b64encode(hashlib.md5(content).digest()).decode()
            if actual != content_md5:
                raise InvalidArgumentError(
                    "write", "memory", path, "content_md5 does not match the data"
                )
        with self._lock:
            current = self._objects.get(path)
            if (
                if_none_match is not None
                and current is not None
                and (if_none_match == "*" or if_none_match == current.etag)
            ):
                raise AlreadyExistsError("write", "memory", path, "object exists (if_none_match)")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailedError("write", "memory", path, "etag does not match")
            if current is None:
                self._check_name_free("write", path)
            entry = _Entry(
                Content((content,)),
                ObjectMode.READ,
                self._etag(),
                datetime.now(UTC),
                content_type=content_type,
                content_md5=content_md5,
                user_metadata=MappingProxyType(dict(user_metadata))
                if user_metadata
                else _EMPTY_MAP,
            )
            self._put(path, entry)
        return self._to_object(path, entry)

    def _to_object(self, path: str, entry: _Entry) -> Object:
        return Object(
            self._rel(path),
            entry.mode,
            content_length=None if ObjectMode.DIR in entry.mode else len(entry.data),
            content_type=entry.content_type,
            content_md5=entry.content_md5,
            etag=entry.etag,
            last_modified=entry.modified,
            user_metadata=entry.user_metadata,
            link_target=None if entry.link_target is None else self._rel(entry.link_target),
        )

    def _stat(self, path: str) -> Object:
        with self._lock:
            entry = self._objects.get(path)
            if entry is None:
                dir_path = path if path.endswith("/") else path + "/"
                marker = self._objects.get(dir_path)
                if marker is not None:
                    return self._to_object(dir_path, marker)
                if self._has_children(dir_path):
                    return Object(self._rel(dir_path), ObjectMode.DIR)
                raise NotFoundError("stat", "memory", path)
        return self._to_object(path, entry)

    def _delete(self, path: str) -> None:
        with self._lock:
            self._pop(path)

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        prefix = path if list_mode == "prefix" or path.endswith("/") else path + "/"
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix))
            entries = [(k, self._objects[k]) for k in keys]
        if list_mode == "prefix":
            for key, entry in entries:
                yield self._to_object(key, entry)
            return
        seen_dirs: set[str] = set()
        for key, entry in entries:
            rest = key[len(prefix) :]
            if not rest:
                continue  # the directory's own marker
            cut = rest.find("/")
            if cut == -1:
                yield self._to_object(key, entry)
                continue
            dir_path = prefix + rest[: cut + 1]
            if dir_path not in seen_dirs:
                seen_dirs.add(dir_path)
                yield Object(self._rel(dir_path), ObjectMode.DIR)

    # -- Copier, Mover ------------------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        with self._lock:
            entry = self._resolve_entry("copy", src)
            if dst not in self._objects:
                self._check_name_free("copy", dst)
            self._put(dst, replace(entry, etag=self._etag(), modified=datetime.now(UTC)))

    def _move(self, src: str, dst: str) -> None:
        with self._lock:
            entry = self._objects.get(src)
            if entry is None:
                self._resolve_entry("move", src)  # raises the right error
                raise NotFoundError("move", "memory", src)
            if ObjectMode.DIR in entry.mode:
                raise ObjectModeInvalidError("move", "memory", src, "is a directory")
            if dst not in self._objects:
                self._check_name_free("move", dst)
            self._pop(src)
            self._put(dst, entry)

    # -- Segmenter ----------------------------------------------------------------------

    def _create_multipart(
        self, path: str, *, content_type: str | None, user_metadata: Mapping[str, str] | None
    ) -> Multipart:
        upload_id = uuid.uuid4().hex
        meta = MappingProxyType(dict(user_metadata)) if user_metadata else _EMPTY_MAP
        with self._lock:
            self._uploads[upload_id] = _Upload(path, content_type, meta)
        return Multipart(path, upload_id)

    def _upload(self, op: str, multipart: Multipart) -> _Upload:
        upload = self._uploads.get(multipart.upload_id)
        if upload is None or upload.path != multipart.path:
            raise NotFoundError(op, "memory", multipart.path, "no such multipart upload")
        return upload

    def _write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, *, size: int | None
    ) -> Part:
        if not 1 <= number <= 10_000:
            raise InvalidArgumentError(
                "write_multipart", "memory", multipart.path, "part number must be 1 to 10000"
            )
        with self._lock:
            self._upload("write_multipart", multipart)
        # The part's ETag is the MD5 of its content, as S3's (clients such as s3cmd check
        # it), computed in the one pass that takes the chunks in; the chunks are kept as
        # they came and joined once, by Complete.
        digest = hashlib.md5(usedforsecurity=False)
        chunks: list[bytes] = []
        total = 0
        for chunk in iter_chunks("write_multipart", "memory", multipart.path, data, size=size):
            piece = chunk if isinstance(chunk, bytes) else bytes(chunk)
            digest.update(piece)
            chunks.append(piece)
            total += len(piece)
        part = _Part(tuple(chunks), total, digest.hexdigest())
        with self._lock:
            self._upload("write_multipart", multipart).parts[number] = part
        return Part(number, total, part.etag)

    def _complete_multipart(self, multipart: Multipart, parts: Sequence[Part]) -> Object:
        with self._lock:
            upload = self._upload("complete_multipart", multipart)
            chosen = self._chosen_parts(multipart, upload, parts)
            if upload.path not in self._objects:
                self._check_name_free("complete_multipart", upload.path)
        # The object is the parts' pieces as received: nothing is copied.
        content = Content(coalesce(chunk for part in chosen for chunk in part.chunks))
        with self._lock:
            if self._uploads.get(multipart.upload_id) is not upload:
                raise NotFoundError(
                    "complete_multipart", "memory", multipart.path, "no such multipart upload"
                )
            entry = _Entry(
                content,
                ObjectMode.READ,
                self._etag(),
                datetime.now(UTC),
                content_type=upload.content_type,
                user_metadata=upload.user_metadata,
            )
            if upload.path not in self._objects:
                self._check_name_free("complete_multipart", upload.path)
            self._put(upload.path, entry)
            del self._uploads[multipart.upload_id]
        return self._to_object(upload.path, entry)

    @staticmethod
    def _chosen_parts(multipart: Multipart, upload: _Upload, parts: Sequence[Part]) -> list[_Part]:
        chosen = []
        last = 0
        for part in parts:
            if part.number <= last:
                raise InvalidArgumentError(
                    "complete_multipart",
                    "memory",
                    multipart.path,
                    "parts must be in increasing order",
                )
            last = part.number
            stored = upload.parts.get(part.number)
            if stored is None or (part.etag and part.etag != stored.etag):
                raise InvalidArgumentError(
                    "complete_multipart",
                    "memory",
                    multipart.path,
                    f"part {part.number} was not uploaded",
                )
            chosen.append(stored)
        return chosen

    def _abort_multipart(self, multipart: Multipart) -> None:
        with self._lock:
            self._uploads.pop(multipart.upload_id, None)

    def _list_multipart(self, multipart: Multipart) -> Iterator[Part]:
        with self._lock:
            upload = self._upload("list_multipart", multipart)
            parts = sorted(upload.parts.items())
        for number, part in parts:
            yield Part(number, part.size, part.etag)

    # -- Appender, Direr, Linker --------------------------------------------------------

    def _append(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
    ) -> Object:
        content = _collect("append", path, data, size, io_callback)
        with self._lock:
            current = self._objects.get(path)
            if current is not None and current.mode & (ObjectMode.DIR | ObjectMode.LINK):
                raise ObjectModeInvalidError("append", "memory", path, "not a regular object")
            if current is None:
                self._check_name_free("append", path)
            base = current.data.pieces if current is not None else ()
            ctype = content_type or (current.content_type if current is not None else None)
            entry = _Entry(
                Content(coalesce((content,), base)),
                ObjectMode.READ | ObjectMode.APPEND,
                self._etag(),
                datetime.now(UTC),
                content_type=ctype,
                user_metadata=current.user_metadata if current is not None else _EMPTY_MAP,
            )
            self._put(path, entry)
        return self._to_object(path, entry)

    def _create_dir(self, path: str) -> Object:
        dir_path = path if path.endswith("/") else path + "/"
        with self._lock:
            if dir_path[:-1] in self._objects:
                raise AlreadyExistsError("create_dir", "memory", path, "an object has this name")
            self._check_parents("create_dir", dir_path[:-1])
            entry = self._objects.get(dir_path)
            if entry is None:
                entry = _Entry(_EMPTY, ObjectMode.DIR, self._etag(), datetime.now(UTC))
                self._put(dir_path, entry)
        return self._to_object(dir_path, entry)

    def _create_link(self, path: str, target: str) -> Object:
        entry = _Entry(_EMPTY, ObjectMode.LINK, self._etag(), datetime.now(UTC), link_target=target)
        with self._lock:
            if path not in self._objects:
                self._check_name_free("create_link", path)
            self._put(path, entry)
        return self._to_object(path, entry)

    # -- Presigner ----------------------------------------------------------------------

    def _presigner(self) -> PresignServer:
        with self._lock:
            if self._presign is None:
                self._presign = PresignServer(self)
            return self._presign

    def _presign_read(self, path: str, *, expire: int | None) -> str:
        return self._presigner().sign("GET", path, expire or 3600)

    def _presign_write(self, path: str, *, expire: int | None) -> str:
        return self._presigner().sign("PUT", path, expire or 3600)


def _parents(path: str) -> Iterator[str]:
    """Yield the directories above a store-absolute path: "/a/b" -> "/", "/a/"."""
    end = path.find("/", 0, len(path) - 1)
    while end != -1:
        yield path[: end + 1]
        end = path.find("/", end + 1, len(path) - 1)


def _collect(
    op: str, path: str, data: WriteData, size: int | None, io_callback: IoCallback | None
) -> bytes:
    if isinstance(data, bytes) and size is None:
        if io_callback is not None and data:
            io_callback(len(data))
        return data
    return b"".join(
        bytes(chunk)
        for chunk in iter_chunks(op, "memory", path, data, size=size, io_callback=io_callback)
    )
