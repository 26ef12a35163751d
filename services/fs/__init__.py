"""The fs service: a directory on the local file system.

Writes are atomic (a temporary file renamed into place); ``sync=True`` makes them
durable. The root directory may not be left: ``..`` is refused by the path rules, and
every path is resolved beneath a directory descriptor held on the root
(:mod:`._beneath`), so no symbolic link, even one swapped in while an operation runs,
leads outside it. Temporary files a killed writer left behind are removed by
:meth:`FsStorage.sweep_temp_files` and by deleting their directory, once older than
the ``temp_max_age`` pair.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import math
import os
import secrets
import stat as stat_module
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from stat import S_ISDIR
from typing import BinaryIO

from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    PathInvalidError,
    PermissionDeniedError,
    StorageError,
    UnexpectedError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._service import map_os_error
from storager._streams import RangeReader, iter_chunks
from storager.services.fs._beneath import Beneath, OutsideRootError
from storager.services.fs._generated import FsGenerated
from storager.services.fs._temp import TEMP_PREFIX, remove_stale, sweep

__all__ = ["TEMP_PREFIX", "FsStorage"]

_READ_ONLY = os.O_RDONLY
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_COPY_CHUNK = 1 << 20
_READ_OPS = frozenset({"read", "open_reader", "stat", "copy", "move", "delete"})
_FILE = ObjectMode.READ
_DEFAULT_TEMP_MAX_AGE = 3600.0
_from_timestamp = datetime.fromtimestamp


class FsStorage(FsGenerated):
    """A store over a local directory; see the module docstring.

    Example:
        >>> store = FsStorage(root="/tmp/data")
        >>> store.write("a/b.txt", b"hi").content_length
        2
    """

    def _open(self, *, root: str, temp_max_age: float | None) -> None:
        if temp_max_age is not None and not math.isfinite(temp_max_age):
            raise PairInvalidError("new", "fs", "", "pair 'temp_max_age' must be finite")
        self._temp_max_age = _DEFAULT_TEMP_MAX_AGE if temp_max_age is None else temp_max_age
        self._beneath = _open_root(root)
        real = self._beneath.real_path
        self._root = real
        self._name = real
        self._token = secrets.token_hex(4)
        self._counter = itertools.count()

    def _close(self) -> None:
        self._beneath.close()

    def sweep_temp_files(self, older_than: float | None = None) -> int:
        """Remove temporary files left under the root by writers that died; return how many.

        A temporary file (``.storager-tmp-*``) is taken as abandoned once it has not
        been modified for ``older_than`` seconds (default: the store's
        ``temp_max_age`` pair, one hour unless set). A younger one may belong to a
        write still running, in this process or another, and is kept.

        Raises:
            PairInvalidError: ``older_than`` is negative or not a finite number.
        """
        age = self._temp_max_age if older_than is None else older_than
        if type(age) not in (int, float) or not math.isfinite(age) or age < 0:
            raise PairInvalidError(
                "sweep_temp_files", "fs", "", "older_than must be a finite number >= 0"
            )
        try:
            return sweep(self._beneath, time.time() - age)
        except StorageError:
            raise
        except Exception as exc:
            raise self._translate(exc, "sweep_temp_files", "/") from exc

    # -- path safety -------------------------------------------------------------------

    def _check_name(self, op: str, path: str) -> None:
        if TEMP_PREFIX in path and path.rstrip("/").rpartition("/")[2].startswith(TEMP_PREFIX):
            raise PathInvalidError(
                op, self.service_name, path, f"names starting with {TEMP_PREFIX!r} are reserved"
            )

    def _open_read_fd(self, op: str, path: str) -> int:
        self._check_name(op, path)
        return self._beneath.open_file(path, _READ_ONLY)

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
        if offset is None and size is None:
            return _whole_reader(fd, path)
        try:
            info = os.fstat(fd)
            if stat_module.S_ISDIR(info.st_mode):
                raise ObjectModeInvalidError("open_reader", "fs", path, "is a directory")
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
        self._check_name("write", path)
        chunks = iter_chunks("write", "fs", path, data, size=size, io_callback=io_callback)
        total = self._replace_with(path, chunks, bool(sync))
        return Object._quick(self._rel(path), _FILE, total)

    def _replace_with(
        self, path: str, chunks: Iterator[bytes | bytearray | memoryview], sync: bool
    ) -> int:
        """Write chunks to a temporary file beside ``path`` and rename it into place."""
        beneath = self._beneath
        dir_fd, name = beneath.open_parent(path, create=True)
        try:
            tmp = f"{TEMP_PREFIX}{self._token}-{next(self._counter)}"
            fd = os.open(tmp, _CREATE, 0o666, dir_fd=dir_fd)
            total = 0
            try:
                try:
                    for chunk in chunks:
                        total += _write_all(fd, chunk)
                    if sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
            if sync:
                os.fsync(dir_fd)
        finally:
            beneath.release(dir_fd)
        return total

    def _stat(self, path: str) -> Object:
        self._check_name("stat", path)
        info = self._beneath.stat(path)
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
        self._check_name("delete", path)
        beneath = self._beneath
        try:
            dir_fd, name = beneath.open_parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return  # no parent, so nothing to delete
        try:
            if path.endswith("/"):
                self._rmdir(dir_fd, name, path)
            else:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except IsADirectoryError:
                    self._rmdir(dir_fd, name, path)
        except (FileNotFoundError, NotADirectoryError):
            return  # missing, or "a.txt/" naming no directory: nothing to delete
        finally:
            beneath.release(dir_fd)

    def _rmdir(self, dir_fd: int, name: str, path: str) -> None:
        """Remove a directory; one holding only stale temporary files is emptied first."""
        try:
            os.rmdir(name, dir_fd=dir_fd)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                young = remove_stale(fd, time.time() - self._temp_max_age)
            finally:
                os.close(fd)
            if young is None:
                raise  # it holds objects: not empty
        if young:
            raise ObjectModeInvalidError(
                "delete", "fs", path, "a write into this directory is in flight"
            )
        os.rmdir(name, dir_fd=dir_fd)

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        if list_mode == "prefix":
            directory, _, name_prefix = path.rpartition("/")
            try:
                fd = self._beneath.open_dir(directory)
            except (FileNotFoundError, NotADirectoryError):
                return
            try:
                yield from self._walk(fd, directory + "/", name_prefix)
            finally:
                self._beneath.release(fd)
            return
        directory = path if path.endswith("/") else path + "/"
        try:
            fd = self._beneath.open_dir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            entries = _scan_sorted(fd, "")
        finally:
            self._beneath.release(fd)
        for name, kind, info in entries:
            abs_path = directory + name
            if kind == "d":
                yield Object(self._rel(abs_path + "/"), ObjectMode.DIR)
            elif kind == "l":
                yield Object(self._rel(abs_path), ObjectMode.LINK)
            else:
                assert info is not None
                yield _file_object(self._rel(abs_path), info)

    def _walk(self, fd: int, directory: str, name_prefix: str) -> Iterator[Object]:
        """Yield every file under the directory ``fd`` whose name starts with the prefix."""
        for name, kind, info in _scan_sorted(fd, name_prefix):
            abs_path = directory + name
            if kind == "d":
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # removed or swapped for a link meanwhile: not descended
                try:
                    yield from self._walk(child, abs_path + "/", "")
                finally:
                    os.close(child)
            elif kind == "l":
                yield Object(self._rel(abs_path), ObjectMode.LINK)
            else:
                assert info is not None
                yield _file_object(self._rel(abs_path), info)

    # -- Copier, Mover, Appender, Direr --------------------------------------------------

    def _copy(self, src: str, dst: str, *, sync: bool | None) -> None:
        self._check_name("copy", dst)
        fd = self._open_read_fd("copy", src)
        try:
            if stat_module.S_ISDIR(os.fstat(fd).st_mode):
                raise ObjectModeInvalidError("copy", "fs", src, "is a directory")
            try:
                self._replace_with(dst, _read_chunks(fd), bool(sync))
            except (NotADirectoryError, IsADirectoryError) as exc:
                raise self._name_taken("copy", dst, exc) from exc
        finally:
            os.close(fd)

    def _move(self, src: str, dst: str, *, sync: bool | None) -> None:
        self._check_name("move", src)
        self._check_name("move", dst)
        beneath = self._beneath
        src_fd, src_name = beneath.open_parent(src)
        try:
            info = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
            if stat_module.S_ISDIR(info.st_mode):
                raise ObjectModeInvalidError("move", "fs", src, "is a directory")
            try:
                dst_fd, dst_name = beneath.open_parent(dst, create=True)
            except NotADirectoryError as exc:
                raise self._name_taken("move", dst, exc) from exc
            try:
                os.replace(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                if sync:
                    os.fsync(dst_fd)
                    os.fsync(src_fd)
            except IsADirectoryError as exc:
                raise self._name_taken("move", dst, exc) from exc
            finally:
                beneath.release(dst_fd)
        finally:
            beneath.release(src_fd)

    def _name_taken(self, op: str, dst: str, exc: OSError) -> StorageError:
        """The error of a copy or move whose destination's name is taken by the other kind.

        It names the destination (the generated code would name the source), and a file
        where a parent directory should be is not the source missing (as for reads).
        """
        if isinstance(exc, NotADirectoryError):
            return ObjectModeInvalidError(op, "fs", dst, "a parent is not a directory")
        return ObjectModeInvalidError(op, "fs", dst, "a directory has this name")

    def _append(
        self,
        path: str,
        data: WriteData,
        *,
        io_callback: IoCallback | None,
        size: int | None,
        sync: bool | None,
    ) -> Object:
        self._check_name("append", path)
        fd = self._beneath.open_file(path, _APPEND, 0o666, create=True)
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
        self._check_name("create_dir", path)
        self._beneath.release(self._beneath.open_dir(path, create=True))
        rel = self._rel(path if path.endswith("/") else path + "/")
        return Object(rel, ObjectMode.DIR)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        if isinstance(exc, OutsideRootError):
            return PathInvalidError(
                op, self.service_name, path, "a symbolic link leads outside the store's root"
            )
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


def _open_root(root: str) -> Beneath:
    """Make and open the root directory; a root that cannot be one is a storager error."""
    shown = _shown(root)
    if "\x00" in root:
        raise PathInvalidError("new", "fs", shown, "root contains a NUL byte")
    try:
        real = os.path.realpath(os.path.abspath(os.path.expanduser(root)))
        _make_dirs(real)
        return Beneath(real)
    except RecursionError:
        raise PathInvalidError("new", "fs", shown, "root is too deeply nested") from None
    except PermissionError as exc:
        raise PermissionDeniedError("new", "fs", shown, "root cannot be made or opened") from exc
    except (OSError, ValueError) as exc:
        reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        if isinstance(exc, NotADirectoryError | FileExistsError):
            reason = "root or one of its parents is not a directory"
        raise PathInvalidError("new", "fs", shown, f"root unusable: {reason}") from exc


def _make_dirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, without recursion, undone if it fails midway.

    A root that cannot be made (a name too long, PATH_MAX passed deep down) leaves
    behind none of the directories made on the way to it.
    """
    missing: list[str] = []
    head = path
    while not os.path.isdir(head):
        missing.append(head)
        parent = os.path.dirname(head)
        if parent == head:
            break
        head = parent
    made: list[str] = []
    try:
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if not os.path.isdir(directory):
                    raise
                continue  # made meanwhile by someone else: theirs, not ours to undo
            made.append(directory)
    except BaseException:
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(directory)  # only if still empty: another writer's files stay
        raise


def _shown(value: str) -> str:
    """Return a root as an error shows it: NUL made visible, cut short."""
    text = value.replace("\x00", "\\0")
    return text if len(text) <= 120 else text[:117] + "..."


def _scan_sorted(fd: int, name_prefix: str) -> list[tuple[str, str, os.stat_result | None]]:
    """Return a directory's visible entries as (name, kind, file status), sorted as listed.

    ``kind`` is ``"d"`` (directory), ``"l"`` (symbolic link) or ``"f"``; files that
    vanish while scanned are left out.
    """
    entries: list[tuple[str, str, os.stat_result | None]] = []
    with os.scandir(fd) as it:
        for entry in it:
            name = entry.name
            if not name.startswith(name_prefix) or name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                entries.append((name + "/", "d", None))
            elif entry.is_symlink():
                entries.append((name, "l", None))
            else:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append((name, "f", info))
    # Directories list as "name/", so sort them by that to keep full paths in order.
    entries.sort(key=lambda item: item[0])
    return [(n[:-1] if k == "d" else n, k, i) for n, k, i in entries]


def _file_object(rel: str, info: os.stat_result) -> Object:
    return Object(
        rel,
        ObjectMode.READ,
        content_length=info.st_size,
        last_modified=datetime.fromtimestamp(info.st_mtime, UTC),
    )


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


def _whole_reader(fd: int, path: str) -> BinaryIO:
    """Return a buffered reader over all of ``fd``, which it takes (closed on failure).

    ``FileIO`` refuses a directory from its own ``fstat`` and owns ``fd`` only once
    built, so ``fd`` is closed exactly once whatever fails; the buffer size is given
    (``open`` would ask ``isatty``). Each system call lets go of the GIL, and a thread
    that wants it back waits for whichever took it meanwhile: Striped's parallel
    fragment reads open one reader per fragment (``benchmarks/README.md``, "Session
    12" under Striped).
    """
    try:
        raw = io.FileIO(fd, "r")
    except IsADirectoryError:
        os.close(fd)
        raise ObjectModeInvalidError("open_reader", "fs", path, "is a directory") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        return io.BufferedReader(raw, io.DEFAULT_BUFFER_SIZE)
    except BaseException:
        raw.close()  # now, not whenever the traceback lets it go
        raise
