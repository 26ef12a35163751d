"""The fs service: a directory on the local file system.

Writes are atomic (a temporary file renamed into place); ``sync=True`` makes them
durable. The root directory may not be left: ``..`` is refused by the path rules, and
symbolic links are checked here so that none leads outside the root.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import os
import secrets
import stat as stat_module
from collections.abc import Iterator
from datetime import UTC, datetime
from stat import S_ISDIR, S_ISLNK
from typing import BinaryIO

from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
    PathInvalidError,
    StorageError,
    UnexpectedError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._service import map_os_error
from storager._streams import RangeReader, iter_chunks
from storager.services.fs._generated import FsGenerated

__all__ = ["FsStorage"]

#: Temporary files of in-flight writes start with this; listings hide them and no
#: object may be named so.
TEMP_PREFIX = ".storager-tmp-"
_READ_ONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_SAFE_DIR_CACHE_MAX = 4096
_COPY_CHUNK = 1 << 20
_READ_OPS = frozenset({"read", "open_reader", "stat", "copy", "move", "delete"})
_FILE = ObjectMode.READ
_from_timestamp = datetime.fromtimestamp


class FsStorage(FsGenerated):
    """A store over a local directory; see the module docstring.

    Example:
        >>> store = FsStorage(root="/tmp/data")
        >>> store.write("a/b.txt", b"hi").content_length
        2
    """

    def _open(self, *, root: str) -> None:
        real = os.path.realpath(os.path.abspath(os.path.expanduser(root)))
        os.makedirs(real, exist_ok=True)
        self._root = real
        self._prefix = "" if real == "/" else real
        self._root_slash = real if real.endswith("/") else real + "/"
        self._name = real
        self._token = secrets.token_hex(4)
        self._counter = itertools.count()
        # Directories already checked to resolve inside the root. A cache, so that
        # the common case costs a dict lookup instead of a realpath walk; a directory
        # swapped for an outward symlink afterwards is caught at the object level
        # (O_NOFOLLOW, lstat) but not above it.
        self._safe_dirs: dict[str, None] = {}

    # -- path safety -------------------------------------------------------------------

    def _local(self, op: str, path: str) -> str:
        """Return the OS path of a store-absolute path whose parents stay inside root."""
        local = self._prefix + path
        trimmed = local.rstrip("/") if path[-1] == "/" else local
        parent, _, name = trimmed.rpartition("/")
        # A directory path ("d/") is resolved whole when listed or stat'ed, so check the
        # directory itself: a link "d" leading outside must not be followed there.
        parent = (trimmed or "/") if path[-1] == "/" else (parent or "/")
        if parent not in self._safe_dirs:
            self._check_inside(op, path, parent)
            if len(self._safe_dirs) >= _SAFE_DIR_CACHE_MAX:
                self._safe_dirs.clear()
            self._safe_dirs[parent] = None
        if name.startswith(TEMP_PREFIX):
            raise PathInvalidError(
                op, self.service_name, path, f"names starting with {TEMP_PREFIX!r} are reserved"
            )
        return local

    def _check_inside(self, op: str, path: str, local: str) -> None:
        real = os.path.realpath(local)
        if real != self._root and not real.startswith(self._root_slash):
            raise PathInvalidError(
                op, self.service_name, path, "a symbolic link leads outside the store's root"
            )

    def _open_read_fd(self, op: str, path: str) -> int:
        local = self._local(op, path)
        try:
            return os.open(local, _READ_ONLY | _NO_FOLLOW)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        self._check_inside(op, path, local)  # a link: follow it only if it stays inside
        return os.open(local, _READ_ONLY)

    # -- Storager -----------------------------------------------------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        fd = self._open_read_fd("read", path)
        try:
            if offset is None and size is None:
                with open(fd, "rb", buffering=0, closefd=False) as fh:
                    data: bytes = fh.readall()
            else:
                data = _pread_all(fd, offset or 0, size)
        finally:
            os.close(fd)
        if io_callback is not None:
            io_callback(len(data))
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        fd = self._open_read_fd("open_reader", path)
        try:
            info = os.fstat(fd)
            if stat_module.S_ISDIR(info.st_mode):
                raise ObjectModeInvalidError("open_reader", "fs", path, "is a directory")
            if offset is None and size is None:
                return open(fd, "rb")
            start = min(offset or 0, info.st_size)
            length = info.st_size - start if size is None else min(size, info.st_size - start)
        except BaseException:
            os.close(fd)
            raise
        raw = RangeReader(
            lambda pos, n: os.pread(fd, n, start + pos), length, on_close=lambda: os.close(fd)
        )
        return io.BufferedReader(raw)

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        io_callback: IoCallback | None,
        size: int | None,
        sync: bool | None,
    ) -> Object:
        if path.endswith("/"):
            raise PathInvalidError("write", "fs", path, "a directory path cannot be written")
        local = self._local("write", path)
        chunks = iter_chunks("write", "fs", path, data, size=size, io_callback=io_callback)
        total = self._replace_with(local, chunks, bool(sync))
        return Object._quick(self._rel(path), _FILE, total)

    def _replace_with(
        self, local: str, chunks: Iterator[bytes | bytearray | memoryview], sync: bool
    ) -> int:
        """Write chunks to a temporary file beside ``local`` and rename it into place."""
        directory = local.rpartition("/")[0] or "/"
        tmp = f"{directory}/{TEMP_PREFIX}{self._token}-{next(self._counter)}"
        try:
            fd = os.open(tmp, _CREATE, 0o666)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o666)
        total = 0
        try:
            try:
                for chunk in chunks:
                    total += _write_all(fd, chunk)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if sync:
            _fsync_dir(directory)
        return total

    def _stat(self, path: str) -> Object:
        local = self._local("stat", path)
        info = os.lstat(local)
        if S_ISLNK(info.st_mode):
            self._check_inside("stat", path, local)
            info = os.stat(local)
        modified = _from_timestamp(info.st_mtime, UTC)
        if S_ISDIR(info.st_mode):
            rel = self._rel(path if path.endswith("/") else path + "/")
            return Object._quick(rel, ObjectMode.DIR, None, modified)
        if path[-1] == "/":
            raise NotFoundError("stat", "fs", path)
        # self._rel(path), inlined: stat is hot, and a call costs about what this does.
        work_dir = self._work_dir
        rel = path[len(work_dir) :] if path.startswith(work_dir) else path
        return Object._quick(rel, _FILE, info.st_size, modified)

    def _delete(self, path: str) -> None:
        local = self._local("delete", path)
        try:
            if path.endswith("/"):
                os.rmdir(local)
            else:
                os.unlink(local)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            return  # "a.txt/" names no directory: nothing to delete
        except IsADirectoryError:
            os.rmdir(local)

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        if list_mode == "prefix":
            directory, _, name_prefix = path.rpartition("/")
            yield from self._walk(directory + "/", name_prefix)
            return
        directory = path if path.endswith("/") else path + "/"
        local = self._local("list", directory) if directory != "/" else self._prefix + "/"
        for name, entry in _scan_sorted(local):
            abs_path = directory + name
            if entry.is_dir(follow_symlinks=False):
                yield Object(self._rel(abs_path + "/"), ObjectMode.DIR)
            elif entry.is_symlink():
                yield Object(self._rel(abs_path), ObjectMode.LINK)
            else:
                info = entry.stat(follow_symlinks=False)
                yield Object(
                    self._rel(abs_path),
                    ObjectMode.READ,
                    content_length=info.st_size,
                    last_modified=datetime.fromtimestamp(info.st_mtime, UTC),
                )

    def _walk(self, directory: str, name_prefix: str) -> Iterator[Object]:
        """Yield every file under ``directory`` whose name starts with the prefix, in order."""
        local = self._local("list", directory) if directory != "/" else self._prefix + "/"
        for name, entry in _scan_sorted(local):
            if not name.startswith(name_prefix):
                continue
            abs_path = directory + name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(abs_path + "/", "")
            elif entry.is_symlink():
                yield Object(self._rel(abs_path), ObjectMode.LINK)
            else:
                info = entry.stat(follow_symlinks=False)
                yield Object(
                    self._rel(abs_path),
                    ObjectMode.READ,
                    content_length=info.st_size,
                    last_modified=datetime.fromtimestamp(info.st_mtime, UTC),
                )

    # -- Copier, Mover, Appender, Direr --------------------------------------------------

    def _copy(self, src: str, dst: str, *, sync: bool | None) -> None:
        if dst.endswith("/"):
            raise PathInvalidError("copy", "fs", dst, "a directory path cannot be written")
        fd = self._open_read_fd("copy", src)
        try:
            if stat_module.S_ISDIR(os.fstat(fd).st_mode):
                raise ObjectModeInvalidError("copy", "fs", src, "is a directory")
            local = self._local("copy", dst)
            self._replace_with(local, _read_chunks(fd), bool(sync))
        finally:
            os.close(fd)

    def _move(self, src: str, dst: str, *, sync: bool | None) -> None:
        if dst.endswith("/") or src.endswith("/"):
            raise PathInvalidError("move", "fs", src, "move takes object paths, not directories")
        local_src = self._local("move", src)
        local_dst = self._local("move", dst)
        info = os.lstat(local_src)
        if stat_module.S_ISDIR(info.st_mode):
            raise ObjectModeInvalidError("move", "fs", src, "is a directory")
        directory = local_dst.rpartition("/")[0] or "/"
        try:
            os.replace(local_src, local_dst)
        except FileNotFoundError:
            if not os.path.lexists(local_src):
                raise
            os.makedirs(directory, exist_ok=True)
            os.replace(local_src, local_dst)
        if sync:
            _fsync_dir(directory)
            _fsync_dir(local_src.rpartition("/")[0] or "/")

    def _append(
        self,
        path: str,
        data: WriteData,
        *,
        io_callback: IoCallback | None,
        size: int | None,
        sync: bool | None,
    ) -> Object:
        if path.endswith("/"):
            raise PathInvalidError("append", "fs", path, "a directory path cannot be written")
        local = self._local("append", path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(local, flags, 0o666)
        except FileNotFoundError:
            os.makedirs(local.rpartition("/")[0] or "/", exist_ok=True)
            fd = os.open(local, flags, 0o666)
        try:
            before = os.fstat(fd).st_size
            try:
                for chunk in iter_chunks(
                    "append", "fs", path, data, size=size, io_callback=io_callback
                ):
                    _write_all(fd, chunk)
            except BaseException:
                os.ftruncate(fd, before)  # a failed append leaves the object as it was
                raise
            if sync:
                os.fsync(fd)
            length = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return Object(self._rel(path), ObjectMode.READ | ObjectMode.APPEND, content_length=length)

    def _create_dir(self, path: str) -> Object:
        local = self._local("create_dir", path)
        os.makedirs(local, exist_ok=True)
        rel = self._rel(path if path.endswith("/") else path + "/")
        return Object(rel, ObjectMode.DIR)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        if isinstance(exc, NotADirectoryError) and op in _READ_OPS:
            return NotFoundError(op, self.service_name, path)
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOTEMPTY:
                return ObjectModeInvalidError(op, self.service_name, path, "directory not empty")
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL):
                return PathInvalidError(op, self.service_name, path, os.strerror(exc.errno))
            if exc.errno == errno.ENOSPC:
                return UnexpectedError(op, self.service_name, path, "no space left on device")
        return map_os_error(exc, op, self.service_name, path)


def _scan_sorted(local: str) -> list[tuple[str, os.DirEntry[str]]]:
    """Return a directory's entries sorted as their listed paths sort; none if missing."""
    try:
        with os.scandir(local) as it:
            entries = [(e.name, e) for e in it if not e.name.startswith(TEMP_PREFIX)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    # Directories list as "name/", so sort them by that to keep full paths in order.
    entries.sort(
        key=lambda item: item[0] + "/" if item[1].is_dir(follow_symlinks=False) else item[0]
    )
    return entries


def _write_all(fd: int, chunk: bytes | bytearray | memoryview) -> int:
    view = memoryview(chunk).cast("B") if not isinstance(chunk, bytes) else chunk
    total = len(view)
    written = os.write(fd, view)
    while written < total:
        written += os.write(fd, view[written:])
    return total


def _pread_all(fd: int, offset: int, size: int | None) -> bytes:
    if size is None:
        size = max(os.fstat(fd).st_size - offset, 0)
    parts = []
    while size > 0:
        chunk = os.pread(fd, min(size, 1 << 30), offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, _COPY_CHUNK):
        yield chunk


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
