"""The sftp service: a directory on an SSH server, over paramiko's SFTP client.

One SSH connection per store, with a few SFTP channels so threads do not wait on each
other (see ``_connection``). Host keys are verified; unknown hosts are refused unless
``accept_unknown_host=True``. Writes go to a temporary file beside the target that is
renamed over it with ``posix-rename@openssh.com``, so readers see the old object or the
new one whole. The root directory may not be left: ``..`` is refused by the path rules,
and every path is resolved on the server (``realpath``) right before each operation,
refused when it leads outside the root, and used resolved (see ``_root`` for the
race that remains).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import posixpath
import secrets
import stat as stat_module
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO, TypeVar

import paramiko

from storager._errors import (
    AlreadyExistsError,
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import RangeReader, iter_chunks
from storager.services.sftp._connection import (
    Channel,
    ConnectOptions,
    OptionError,
    Pool,
    default_user,
    parse_credential,
)
from storager.services.sftp._errors import map_sftp_error
from storager.services.sftp._generated import SftpGenerated
from storager.services.sftp._io import iter_range, open_pipelined, read_range, write_chunk
from storager.services.sftp._root import TEMP_PREFIX, RootGuard, prepare_root

__all__ = ["TEMP_PREFIX", "SftpStorage"]

_READER_BUFFER = 1 << 20
_T = TypeVar("_T")


class SftpStorage(SftpGenerated):
    """A store over a directory of an SSH server; see the module docstring.

    Example:
        >>> store = SftpStorage(host="127.0.0.1", port=2222, root="/srv/data",
        ...                     private_key="~/.ssh/id_ed25519")
        >>> store.write("a/b.txt", b"hi").content_length
        2
    """

    # -- construction ------------------------------------------------------------------

    def _open(
        self,
        *,
        host: str,
        root: str | None,
        user: str | None,
        port: int | None,
        credential: str | None,
        private_key: str | None,
        known_hosts: str | None,
        host_key: str | None,
        accept_unknown_host: bool | None,
    ) -> None:
        port = port or 22
        shown = f"{host}:{port}{root or ''}"
        try:
            password, passphrase = parse_credential(credential)
        except OptionError as exc:
            raise PairInvalidError("new", self.service_name, shown, str(exc)) from None
        options = ConnectOptions(
            host=host,
            port=port,
            user=user or default_user(),
            private_key=private_key,
            known_hosts=known_hosts,
            host_key=host_key,
            accept_unknown_host=bool(accept_unknown_host),
            password=password,
            passphrase=passphrase,
        )
        self._pool: Pool | None = None
        try:
            self._pool = Pool(options)
            with self._channel() as ch, ch.lock:
                real = prepare_root(ch.sftp, self.service_name, root or ".")
            self._guard = RootGuard(self.service_name, real)
        except OptionError as exc:
            self._close()
            raise PairInvalidError("new", self.service_name, shown, str(exc)) from exc
        except StorageError:
            self._close()
            raise
        except Exception as exc:
            self._close()
            raise self._map_error(exc, "new", shown) from exc
        self._name = f"{host}:{port}{self._guard.root}"
        self._token = secrets.token_hex(4)
        self._counter = itertools.count()
        self._posix_rename = True

    def _close(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()

    @contextlib.contextmanager
    def _channel(self) -> Iterator[Channel]:
        if self._pool is None or self._closed:
            raise paramiko.SSHException("store is closed")
        with self._pool.channel() as ch:
            yield ch

    # -- Storager -----------------------------------------------------------------------

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        remote = self._guard.remote("read", path)
        with self._channel() as ch, ch.lock:
            attrs, target = self._guard.attrs("read", path, ch.sftp, remote)
            start, length = self._range("read", path, attrs, offset, size)
            if length == 0:
                data = b""
            else:
                with ch.sftp.open(target, "r") as f:
                    data = read_range(f, start, length)
        if io_callback is not None:
            io_callback(len(data))
        return data

    def _range(
        self,
        op: str,
        path: str,
        attrs: paramiko.SFTPAttributes,
        offset: int | None,
        size: int | None,
    ) -> tuple[int, int]:
        if stat_module.S_ISDIR(attrs.st_mode or 0):
            raise ObjectModeInvalidError(op, self.service_name, path, "is a directory")
        total = attrs.st_size or 0
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        return start, length

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        remote = self._guard.remote("open_reader", path)
        if self._pool is None:
            raise paramiko.SSHException("store is closed")
        pool = self._pool
        ch = pool.acquire()
        try:
            with ch.lock:
                attrs, target = self._guard.attrs("open_reader", path, ch.sftp, remote)
                start, length = self._range("open_reader", path, attrs, offset, size)
                # The open handle keeps reading the version it opened, even when a
                # write renames a new one over the path.
                f = ch.sftp.open(target, "r")
        except BaseException:
            pool.release(ch)
            raise

        def fetch(pos: int, n: int) -> bytes:
            try:
                with ch.lock:
                    return read_range(f, start + pos, n)
            except StorageError:
                raise
            except Exception as exc:
                raise self._map_error(exc, "open_reader", path) from exc

        def on_close() -> None:
            try:
                with ch.lock, contextlib.suppress(Exception):
                    f.close()
            finally:
                pool.release(ch)

        raw = RangeReader(fetch, length, on_close=on_close)
        return io.BufferedReader(raw, buffer_size=_READER_BUFFER)

    def _write(
        self, path: str, data: WriteData, *, io_callback: IoCallback | None, size: int | None
    ) -> Object:
        remote = self._guard.remote("write", path)
        chunks = iter_chunks("write", "sftp", path, data, size=size, io_callback=io_callback)
        with self._channel() as ch:
            total = self._replace_with("write", path, ch, remote, chunks)
        return Object(self._rel(path), ObjectMode.READ, content_length=total)

    def _locked(self, ch: Channel, fn: Callable[[], _T]) -> _T:
        with ch.lock:
            return fn()

    def _open_temp(
        self, op: str, path: str, ch: Channel, remote: str
    ) -> tuple[str, str, paramiko.SFTPFile]:
        """Open a new temporary file beside ``remote``.

        Returns the real path to rename it to, the temporary file's path and the file,
        all under the parent directory as resolved right now.
        """
        directory, name = posixpath.split(remote)
        tmp_name = f"{TEMP_PREFIX}{self._token}-{next(self._counter)}"
        with ch.lock:
            try:
                real_dir = self._guard.resolve(op, path, ch.sftp, directory)
                f = open_pipelined(ch.sftp, posixpath.join(real_dir, tmp_name), "wx")
            except FileNotFoundError:
                real_dir = self._guard.makedirs(op, path, ch.sftp, directory)
                f = open_pipelined(ch.sftp, posixpath.join(real_dir, tmp_name), "wx")
        return posixpath.join(real_dir, name), posixpath.join(real_dir, tmp_name), f

    def _replace_with(
        self,
        op: str,
        path: str,
        ch: Channel,
        remote: str,
        chunks: Iterator[bytes | bytearray | memoryview],
    ) -> int:
        """Write chunks to a temporary file beside ``remote`` and rename it over it."""
        target, tmp, f = self._open_temp(op, path, ch, remote)
        try:
            try:
                total = self._send(ch, f, chunks)
            finally:
                with ch.lock:
                    f.close()
            with ch.lock:
                self._rename_over(op, path, ch, tmp, target)
        except BaseException:
            with ch.lock, contextlib.suppress(Exception):
                ch.sftp.remove(tmp)
            raise
        return total

    def _send(
        self, ch: Channel, f: paramiko.SFTPFile, chunks: Iterator[bytes | bytearray | memoryview]
    ) -> int:
        """Write every chunk to ``f``; return the byte count."""
        total = 0
        # The caller's data is read outside the lock: it may come from this store.
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            with ch.lock:
                write_chunk(f, view)
            total += view.nbytes
        return total

    def _rename_over(self, op: str, path: str, ch: Channel, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, replacing it (atomically with posix-rename)."""
        try:
            if self._posix_rename:
                try:
                    ch.sftp.posix_rename(src, dst)
                    return
                except OSError as exc:
                    if exc.errno is not None or "unsupported" not in str(exc).lower():
                        raise
                    self._posix_rename = False
            with contextlib.suppress(FileNotFoundError):
                ch.sftp.remove(dst)
            ch.sftp.rename(src, dst)
        except OSError:
            with contextlib.suppress(OSError):
                if stat_module.S_ISDIR(ch.sftp.lstat(dst).st_mode or 0):
                    raise ObjectModeInvalidError(
                        op, self.service_name, path, "a directory exists at this path"
                    ) from None
            raise

    def _stat(self, path: str) -> Object:
        remote = self._guard.remote("stat", path)
        with self._channel() as ch, ch.lock:
            attrs, _ = self._guard.attrs("stat", path, ch.sftp, remote)
        return self._object(path, attrs)

    def _object(self, path: str, attrs: paramiko.SFTPAttributes) -> Object:
        modified = (
            datetime.fromtimestamp(attrs.st_mtime, UTC) if attrs.st_mtime is not None else None
        )
        if stat_module.S_ISDIR(attrs.st_mode or 0):
            rel = self._rel(path if path.endswith("/") else path + "/")
            return Object(rel, ObjectMode.DIR, last_modified=modified)
        if path.endswith("/"):
            raise NotFoundError("stat", self.service_name, path)
        return Object(
            self._rel(path), ObjectMode.READ, content_length=attrs.st_size, last_modified=modified
        )

    def _delete(self, path: str) -> None:
        remote = self._guard.remote("delete", path)
        with self._channel() as ch, ch.lock:
            real = remote
            try:
                # A final link is removed itself, never what it points at.
                real = self._guard.resolve_parent("delete", path, ch.sftp, remote)
                if not path.endswith("/"):
                    ch.sftp.remove(real)
                    return
            except FileNotFoundError:
                return
            except OSError:
                # SFTP says only "Failure" for a directory; look before deciding.
                if not self._is_dir(ch, real):
                    raise
            self._rmdir(path, ch, real)

    def _is_dir(self, ch: Channel, remote: str) -> bool:
        try:
            return stat_module.S_ISDIR(ch.sftp.lstat(remote).st_mode or 0)
        except FileNotFoundError:
            return False

    def _rmdir(self, path: str, ch: Channel, remote: str) -> None:
        try:
            ch.sftp.rmdir(remote)
        except FileNotFoundError:
            return
        except OSError:
            if not self._is_dir(ch, remote):
                return  # "a.txt/" names no directory: nothing to delete
            if ch.sftp.listdir(remote):
                raise ObjectModeInvalidError(
                    "delete", self.service_name, path, "directory not empty"
                ) from None
            raise

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        self._guard.check_names("list", path)
        if list_mode == "prefix":
            directory, _, name_prefix = path.rpartition("/")
            return self._walk(directory + "/", name_prefix)
        directory = path if path.endswith("/") else path + "/"
        return self._list_dir(directory)

    def _list_dir(self, directory: str) -> Iterator[Object]:
        for name, attrs in self._scan(directory):
            abs_path = directory + name
            mode = attrs.st_mode or 0
            if stat_module.S_ISDIR(mode):
                yield Object(self._rel(abs_path + "/"), ObjectMode.DIR)
            else:
                yield self._entry(abs_path, attrs)

    def _walk(self, directory: str, name_prefix: str) -> Iterator[Object]:
        """Yield every file under ``directory`` whose name starts with the prefix, in order."""
        for name, attrs in self._scan(directory):
            if not name.startswith(name_prefix):
                continue
            abs_path = directory + name
            if stat_module.S_ISDIR(attrs.st_mode or 0):
                yield from self._walk(abs_path + "/", "")
            else:
                yield self._entry(abs_path, attrs)

    def _entry(self, abs_path: str, attrs: paramiko.SFTPAttributes) -> Object:
        if stat_module.S_ISLNK(attrs.st_mode or 0):
            return Object(self._rel(abs_path), ObjectMode.LINK)
        modified = (
            datetime.fromtimestamp(attrs.st_mtime, UTC) if attrs.st_mtime is not None else None
        )
        return Object(
            self._rel(abs_path),
            ObjectMode.READ,
            content_length=attrs.st_size,
            last_modified=modified,
        )

    def _scan(self, directory: str) -> list[tuple[str, paramiko.SFTPAttributes]]:
        """Return one directory's entries, sorted as their paths sort; none if missing.

        One directory is read whole per call (SFTP pages it), and no channel is held
        while the caller iterates.
        """
        remote = self._guard.remote("list", directory) if directory != "/" else self._guard.root
        with self._channel() as ch, ch.lock:
            real = remote
            try:
                real = self._guard.resolve("list", directory, ch.sftp, remote)
                entries = ch.sftp.listdir_attr(real)
            except FileNotFoundError:
                return []
            except OSError:
                if not self._is_dir(ch, real):
                    return []
                raise
        listed = [(e.filename, e) for e in entries if not e.filename.startswith(TEMP_PREFIX)]
        # Directories list as "name/", so sort them by that to keep full paths in order.
        listed.sort(
            key=lambda item: item[0] + "/" if stat_module.S_ISDIR(item[1].st_mode or 0) else item[0]
        )
        return listed

    # -- Copier, Mover, Appender, Direr --------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        src_remote = self._guard.remote("copy", src)
        dst_remote = self._guard.remote("copy", dst)
        with self._channel() as ch:
            with ch.lock:
                attrs, target = self._guard.attrs("copy", src, ch.sftp, src_remote)
                _, length = self._range("copy", src, attrs, None, None)
                f = ch.sftp.open(target, "r")
            try:
                # SFTP v3 has no copy: the bytes pass through here, a chunk at a time.
                chunks = iter_range(lambda fn: self._locked(ch, fn), f, length)
                self._replace_with("copy", dst, ch, dst_remote, chunks)
            finally:
                with ch.lock, contextlib.suppress(Exception):
                    f.close()

    def _move(self, src: str, dst: str) -> None:
        src_remote = self._guard.remote("move", src)
        dst_remote = self._guard.remote("move", dst)
        with self._channel() as ch, ch.lock:
            # Both names are taken as they are (a link moves as a link).
            real_src = self._guard.resolve_parent("move", src, ch.sftp, src_remote)
            if stat_module.S_ISDIR(ch.sftp.lstat(real_src).st_mode or 0):
                raise ObjectModeInvalidError("move", self.service_name, src, "is a directory")
            directory, name = posixpath.split(dst_remote)
            try:
                real_dir = self._guard.resolve("move", dst, ch.sftp, directory)
                parent_is_dir = stat_module.S_ISDIR(ch.sftp.stat(real_dir).st_mode or 0)
            except FileNotFoundError:
                real_dir = self._guard.makedirs("move", dst, ch.sftp, directory)
                parent_is_dir = True
            if not parent_is_dir:
                raise ObjectModeInvalidError(
                    "move", self.service_name, dst, "a parent is not a directory"
                )
            self._rename_over("move", dst, ch, real_src, posixpath.join(real_dir, name))

    def _append(
        self, path: str, data: WriteData, *, io_callback: IoCallback | None, size: int | None
    ) -> Object:
        remote = self._guard.remote("append", path)
        chunks = iter_chunks("append", "sftp", path, data, size=size, io_callback=io_callback)
        with self._channel() as ch:
            with ch.lock:
                target, before = self._append_target(path, ch, remote)
                f = open_pipelined(ch.sftp, target, "a")
            try:
                try:
                    self._send(ch, f, chunks)
                finally:
                    with ch.lock:
                        f.close()
                with ch.lock:
                    length = ch.sftp.stat(target).st_size
            except BaseException:
                # A failed append leaves the object as it was.
                with ch.lock, contextlib.suppress(Exception):
                    ch.sftp.truncate(target, before)
                raise
        return Object(self._rel(path), ObjectMode.READ | ObjectMode.APPEND, content_length=length)

    def _append_target(self, path: str, ch: Channel, remote: str) -> tuple[str, int]:
        """Return the server path to append to and its current size (0 when missing)."""
        try:
            real = self._guard.resolve("append", path, ch.sftp, remote)
        except FileNotFoundError:
            directory, name = posixpath.split(remote)
            real_dir = self._guard.makedirs("append", path, ch.sftp, directory)
            return posixpath.join(real_dir, name), 0
        try:
            attrs = self._guard.lstat_resolved("append", path, ch.sftp, real)
        except FileNotFoundError:
            return real, 0
        if stat_module.S_ISDIR(attrs.st_mode or 0):
            raise ObjectModeInvalidError("append", self.service_name, path, "is a directory")
        return real, attrs.st_size or 0

    def _create_dir(self, path: str) -> Object:
        remote = self._guard.remote("create_dir", path)
        with self._channel() as ch, ch.lock:
            try:
                attrs, _ = self._guard.attrs("create_dir", path, ch.sftp, remote)
            except FileNotFoundError:
                self._guard.makedirs("create_dir", path, ch.sftp, remote)
            else:
                if not stat_module.S_ISDIR(attrs.st_mode or 0):
                    raise AlreadyExistsError(
                        "create_dir", self.service_name, path, "a file exists at this path"
                    )
        return Object(self._rel(path if path.endswith("/") else path + "/"), ObjectMode.DIR)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_sftp_error(exc, op, self.service_name, path)
