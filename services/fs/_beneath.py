"""Resolve store paths beneath a directory file descriptor held on the root.

The model is Go 1.24's ``os.Root`` and Rust's cap-std: the store opens its root once
and keeps the descriptor. Every path is walked from it one component at a time with
``openat(name, O_DIRECTORY | O_NOFOLLOW)``, and the final component is opened, stat'ed,
created, renamed or removed relative to its parent's descriptor, never by a string
path. Nothing is cached by name, so a directory swapped for a symbolic link at any
moment is met by the next ``openat``, which refuses to follow it.

Symbolic links inside the root are followed only by this resolver, component by
component under the same rule: the link is read with ``readlink`` and its target walked
again from the root (absolute targets must name a place under the root's real path) or
from the link's directory (relative targets; ``..`` climbs the names already walked and
may not climb past the root). A link that leads outside raises :class:`OutsideRootError`
before anything is opened there. At most :data:`MAX_LINKS` links are followed per path
(``ELOOP`` after that, as the kernel does).

An open's common case (a directory on the way, no link) is one ``openat2`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` where the kernel has it (:mod:`._openat2`);
any error there, a link included, falls back to the walk, which decides every error an
open returns. The one outcome that differs: ``openat2`` passes a directory one may
search but not read, which the walk (opening each directory for reading) refuses.

What remains outside this module's power: a directory that someone *moves* out of the
root while an operation holds a descriptor on it is still written through by that one
operation (the kernel keeps the descriptor valid), as with ``os.Root``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
import weakref

from storager.services.fs._openat2 import open_beneath

__all__ = ["MAX_LINKS", "Beneath", "OutsideRootError"]

#: Symbolic links followed for one path before giving up with ELOOP.
MAX_LINKS = 40
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC


class OutsideRootError(Exception):
    """A symbolic link under the root leads outside it; nothing was touched there."""


class Beneath:
    """A directory descriptor on a root, and path resolution that never leaves it.

    Paths given to the methods are store-absolute (``"/a/b.txt"``; a trailing ``/`` is
    ignored). A directory descriptor a method returns may be the root's own: give it
    back with :meth:`release`, which closes every other one.

    Example:
        >>> root = Beneath("/tmp")
        >>> dir_fd, name = root.open_parent("/a/b.txt", create=True)
        >>> root.release(dir_fd)
        >>> root.close()
    """

    def __init__(self, real_path: str) -> None:
        """Open ``real_path`` (already made real with ``os.path.realpath``).

        Raises:
            OSError: The root cannot be opened as a directory.
        """
        self.real_path = real_path
        self._prefix = real_path.rstrip("/") + "/"
        self.fd = os.open(real_path, _ROOT_FLAGS)
        self._finalizer = weakref.finalize(self, os.close, self.fd)

    def close(self) -> None:
        """Close the root descriptor; closing twice is fine."""
        self._finalizer()

    def release(self, dir_fd: int) -> None:
        """Close a descriptor a method returned, unless it is the root's own."""
        if dir_fd != self.fd:
            os.close(dir_fd)

    # -- directories ----------------------------------------------------------------

    def open_dir(self, path: str, *, create: bool = False) -> int:
        """Return a descriptor on the directory ``path``; ``create`` makes missing ones.

        Raises:
            OutsideRootError: A link on the way leads outside the root.
            FileNotFoundError: A directory is missing and ``create`` is false.
            NotADirectoryError: A component is a file.
        """
        names = path.strip("/")
        return self._walk(names.split("/"), create)[0] if names else self.fd

    def open_parent(self, path: str, *, create: bool = False) -> tuple[int, str]:
        """Return a descriptor on the parent of ``path`` and the final name in it.

        The final component is not looked at: callers act on it with ``dir_fd``.
        """
        parent, _, name = path.strip("/").rpartition("/")
        if not parent:
            return self.fd, name or "."
        return self._walk(parent.split("/"), create)[0], name

    # -- final components, following links that stay inside ---------------------------

    def open_file(self, path: str, flags: int, mode: int = 0o666, *, create: bool = False) -> int:
        """Open the final component of ``path`` with ``flags``, following inward links.

        ``create`` makes missing parent directories (for ``O_CREAT`` opens).
        """
        parent, _, name = path.strip("/").rpartition("/")
        flags |= os.O_NOFOLLOW | _CLOEXEC
        root = self.fd
        if parent:  # a walk of one openat or more: one openat2 instead, where it can
            fd = open_beneath(root, path.strip("/"), flags, mode)
            if fd is not None:
                return fd
        dir_fd = self._walk(parent.split("/"), create)[0] if parent else root
        try:
            return os.open(name, flags, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
        finally:
            if dir_fd != root:
                os.close(dir_fd)
        return self._open_file_slowly(parent, name, flags, mode, create)

    def stat(self, path: str) -> os.stat_result:
        """Return the status of ``path``, following links that stay inside the root."""
        parent, _, name = path.strip("/").rpartition("/")
        if not name:
            return os.fstat(self.fd)
        root = self.fd
        dir_fd = self._walk(parent.split("/"), False)[0] if parent else root
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            if dir_fd != root:
                os.close(dir_fd)
        if stat_module.S_ISLNK(info.st_mode):
            return self._stat_slowly(parent, name)
        return info

    def _open_file_slowly(self, parent: str, name: str, flags: int, mode: int, create: bool) -> int:
        """Open ``name`` in ``parent`` when it is (or was) a link: follow it if inward."""
        names = parent.split("/") if parent else []
        for _ in range(MAX_LINKS + 1):
            dir_fd, walked = self._walk(names, create) if names else (self.fd, names)
            try:
                return os.open(name, flags, mode, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                names, name = self._through_link(dir_fd, walked, name)
            finally:
                self.release(dir_fd)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))

    def _stat_slowly(self, parent: str, name: str) -> os.stat_result:
        """Stat ``name`` in ``parent`` when it is (or was) a link: follow it if inward."""
        names = parent.split("/") if parent else []
        for _ in range(MAX_LINKS + 1):
            dir_fd, walked = self._walk(names, False) if names else (self.fd, names)
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if not stat_module.S_ISLNK(info.st_mode):
                    return info
                names, name = self._through_link(dir_fd, walked, name)
            finally:
                self.release(dir_fd)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))

    # -- the walk ---------------------------------------------------------------------

    def _walk(self, names: list[str], create: bool) -> tuple[int, list[str]]:
        """Open the directory reached by ``names`` from the root; return it and its names.

        The common case (every component a plain directory) is one ``openat`` each;
        anything else (a missing directory, a link, ``..``) takes :meth:`_walk_slowly`.
        """
        root = fd = self.fd
        try:
            for name in names:
                if name == "..":
                    break
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if fd != root:
                    os.close(fd)
                fd = child
            else:
                return fd, names
        except OSError:
            pass
        if fd != root:
            os.close(fd)
        return self._walk_slowly(names, create)

    def _walk_slowly(self, names: list[str], create: bool) -> tuple[int, list[str]]:
        """Walk ``names`` making missing directories and following links that stay inside.

        ``..`` in ``names`` (only from link targets) climbs the names walked so far.
        """
        todo = names[::-1]
        fd = self.fd
        walked: list[str] = []
        budget = MAX_LINKS
        try:
            while todo:
                name = todo.pop()
                if not name or name == ".":
                    continue
                if name == "..":
                    if not walked:
                        raise OutsideRootError(name)
                    walked.pop()
                    todo.extend(reversed(walked))
                    walked = []
                    self.release(fd)
                    fd = self.fd
                    continue
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create or budget <= 0:
                        raise
                    budget -= 1
                    # Made meanwhile by someone else: fine, it is opened next round.
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    todo.append(name)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    target = _readlink(name, fd)
                    if target is None and exc.errno == errno.ENOTDIR:
                        raise  # a file where a directory should be
                    if budget <= 0:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from exc
                    budget -= 1
                    if target is None:
                        todo.append(name)  # a link swapped back meanwhile: try again
                        continue
                    if target.startswith("/"):
                        self.release(fd)
                        fd = self.fd
                        walked = []
                        target = self._inside(target)
                    todo.extend(reversed(target.split("/")))
                    continue
                self.release(fd)
                fd = child
                walked.append(name)
        except BaseException:
            self.release(fd)
            raise
        return fd, walked

    def _through_link(self, dir_fd: int, walked: list[str], name: str) -> tuple[list[str], str]:
        """Return the parent names and final name a link ``name`` in ``dir_fd`` points at."""
        target = _readlink(name, dir_fd)
        if target is None:  # no longer a link: look again at the same place
            return walked, name
        base = [] if target.startswith("/") else walked
        if target.startswith("/"):
            target = self._inside(target)
        names: list[str] = []
        for part in [*base, *target.split("/")]:
            if part == "..":
                if not names:
                    raise OutsideRootError(name)
                names.pop()
            elif part and part != ".":
                names.append(part)
        if not names:
            return [], "."  # the link names the root itself
        return names[:-1], names[-1]

    def _inside(self, target: str) -> str:
        """Return an absolute link target relative to the root, or raise if outside."""
        if target.rstrip("/") + "/" == self._prefix:
            return ""
        if not target.startswith(self._prefix):
            raise OutsideRootError(target)
        return target[len(self._prefix) :]


def _readlink(name: str, dir_fd: int) -> str | None:
    """Return the target of the link ``name``, or None when it is not a link."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise
