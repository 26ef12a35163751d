"""Keeping an sftp store inside its root directory on the server.

``..`` never reaches here (the core's path rules refuse it); what remains is symbolic
links on the server. SFTP has no ``openat``: every request names a whole path, which
the server resolves again. So nothing is cached: right before each operation the
server's ``realpath`` (``normalize``, one round trip) resolves the path, the result
must be the root or lie under it, and the operation then runs on that resolved path
(which held no symbolic link when it was resolved), never on the caller's spelling.

- An object that is read, stat'ed, appended to or copied from is resolved whole: a
  final symbolic link is followed when its target stays inside the root, and refused
  (``PathInvalidError``) when it leads out. It is then ``lstat``-ed: a link appearing
  there after ``realpath`` means the server changed under us, and is refused too.
- A name that is written, moved or deleted has only its parent resolved: the
  operation acts on a final link itself (replacing or removing the link), never on
  what it points at.
- A directory that is listed is resolved whole, like an object that is read.

What remains is a race no SFTP client can close: between ``realpath`` and the
operation (one round trip), someone with access to the server's file system can swap
a directory on the resolved path for a link. A server-side chroot (OpenSSH's
``ChrootDirectory`` with ``internal-sftp``) is the real boundary; the service notes
say so.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import stat as stat_module

import paramiko
from paramiko import sftp as sftp_protocol

from storager._errors import ObjectModeInvalidError, PathInvalidError

__all__ = ["NAME_MAX", "TEMP_PREFIX", "RootGuard", "prepare_root", "printable"]

#: Temporary files of in-flight writes start with this; listings hide them and no
#: object may be named so (the same prefix as fs).
TEMP_PREFIX = ".storager-tmp-"
#: The longest name (one path component) in bytes that POSIX file systems take.
NAME_MAX = 255
_OUTSIDE = "a symbolic link leads outside the store's root"
_CHANGED = "the path changed on the server while it was being resolved"


def _realpath_and_lstat(
    sftp: paramiko.SFTPClient, remote: str
) -> tuple[str, paramiko.SFTPAttributes | None] | None:
    """Send REALPATH and LSTAT of one path together: one round trip, not two.

    The server answers them in order, one system call after the other, so when the
    real path is ``remote`` itself (no link on the way) the lstat is of that path.
    Returns the real path and the attributes (None when nothing is there), or None
    when this paramiko lacks the internals it uses (``_async_request``,
    ``_read_response``, ``SFTPAttributes._from_msg``).

    Raises:
        FileNotFoundError: A parent directory does not exist (from REALPATH).
    """
    send = getattr(sftp, "_async_request", None)
    read = getattr(sftp, "_read_response", None)
    if send is None or read is None or not hasattr(paramiko.SFTPAttributes, "_from_msg"):
        return None
    first = send(type(None), sftp_protocol.CMD_REALPATH, remote)
    try:
        second = send(type(None), sftp_protocol.CMD_LSTAT, remote)
    except BaseException:
        with contextlib.suppress(Exception):
            read(first)
        raise
    try:
        kind, msg = read(first)
        if kind != sftp_protocol.CMD_NAME or msg.get_int() != 1:
            raise paramiko.SFTPError("Expected one name in the realpath response")
        real: str = msg.get_text()
    except BaseException:
        # Leave nothing outstanding on the session: take the lstat answer too.
        with contextlib.suppress(Exception):
            read(second)
        raise
    try:
        kind, msg = read(second)
    except FileNotFoundError:
        return real, None
    if kind != sftp_protocol.CMD_ATTRS:
        raise paramiko.SFTPError("Expected attributes")
    attrs: paramiko.SFTPAttributes = paramiko.SFTPAttributes._from_msg(msg)
    return real, attrs


def printable(path: str) -> str:
    """Return ``path`` as an error can show it (lone surrogates escaped)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def prepare_root(sftp: paramiko.SFTPClient, service: str, root: str) -> str:
    """Return the server's real path of ``root``, creating it when missing."""
    try:
        real = sftp.normalize(root)
        info = sftp.stat(real)
    except FileNotFoundError:
        start = "" if root.startswith("/") else sftp.normalize(".") + "/"
        _mkdir_p(sftp, posixpath.normpath(start + root))
        real = sftp.normalize(root)
        info = sftp.stat(real)
    if not stat_module.S_ISDIR(info.st_mode or 0):
        raise ObjectModeInvalidError("new", service, root, "root is not a directory")
    return real


def _mkdir_p(sftp: paramiko.SFTPClient, real: str) -> None:
    """Create an absolute directory and its parents (for the root only)."""
    current = ""
    for part in real.strip("/").split("/"):
        current += "/" + part
        try:
            sftp.mkdir(current)
        except OSError:
            if not stat_module.S_ISDIR(sftp.stat(current).st_mode or 0):
                raise


class RootGuard:
    """Map store paths to server paths and refuse any that leave the root.

    Every method that takes an SFTP client makes its requests right away; the caller
    holds the channel's lock.

    Attributes:
        root: The root's real path on the server, without a trailing slash.
    """

    def __init__(self, service: str, root: str) -> None:
        self.service = service
        self.root = root
        self._prefix = "" if root == "/" else root
        self._root_slash = root if root.endswith("/") else root + "/"

    # -- names ------------------------------------------------------------------------

    def check_names(self, op: str, path: str) -> None:
        """Refuse a path the server cannot name: not UTF-8, or a name over 255 bytes.

        Raises:
            PathInvalidError: Naming the operation and the path (surrogates escaped).
        """
        try:
            encoded = path.encode("utf-8")
        except UnicodeEncodeError:
            raise PathInvalidError(
                op,
                self.service,
                printable(path),
                "path is not valid Unicode (a lone surrogate); SFTP names are UTF-8",
            ) from None
        if len(encoded) > NAME_MAX and any(len(name) > NAME_MAX for name in encoded.split(b"/")):
            raise PathInvalidError(
                op, self.service, path, f"a name in the path is longer than {NAME_MAX} bytes"
            )

    def remote(self, op: str, path: str) -> str:
        """Return the server path of a store-absolute path (no trailing slash).

        The result is not resolved: hand it to :meth:`resolve` or :meth:`resolve_parent`.

        Raises:
            PathInvalidError: The name is reserved for temporary files, is not UTF-8,
                or is too long.
        """
        self.check_names(op, path)
        stripped = path.rstrip("/")
        if stripped.rpartition("/")[2].startswith(TEMP_PREFIX):
            raise PathInvalidError(
                op, self.service, path, f"names starting with {TEMP_PREFIX!r} are reserved"
            )
        return self._prefix + stripped if stripped else self.root

    def inside(self, real: str) -> bool:
        """Return whether a resolved server path is the root or under it."""
        return real == self.root or real.startswith(self._root_slash)

    # -- resolving --------------------------------------------------------------------

    def resolve(self, op: str, path: str, sftp: paramiko.SFTPClient, remote: str) -> str:
        """Return the real path of ``remote``, following every link, if it stays inside.

        OpenSSH resolves a missing final name to where it would be; a missing parent
        raises ``FileNotFoundError``.

        Raises:
            PathInvalidError: The resolved path is outside the root.
            FileNotFoundError: A parent directory does not exist.
        """
        real = sftp.normalize(remote)
        if not self.inside(real):
            raise PathInvalidError(op, self.service, path, _OUTSIDE)
        return real

    def resolve_parent(self, op: str, path: str, sftp: paramiko.SFTPClient, remote: str) -> str:
        """Return the real path of ``remote``'s parent, joined with its final name.

        A final link is left as it is: the caller acts on the link itself.

        Raises:
            PathInvalidError: The parent resolves outside the root, or ``remote`` is
                the root itself.
            FileNotFoundError: A parent directory does not exist.
        """
        if remote == self.root:
            raise PathInvalidError(op, self.service, path, "path names the store's root")
        parent, name = posixpath.split(remote)
        real_parent = self.resolve(op, path, sftp, parent)
        return posixpath.join(real_parent, name)

    def attrs(
        self, op: str, path: str, sftp: paramiko.SFTPClient, remote: str
    ) -> tuple[paramiko.SFTPAttributes, str]:
        """Resolve an object (a final link followed only inside the root) and lstat it.

        Returns the attributes and the real server path to open.

        Raises:
            PathInvalidError: It resolves outside the root, or a link appeared at the
                resolved path (the server changed between the two requests).
            FileNotFoundError: It does not exist.
        """
        pipelined = _realpath_and_lstat(sftp, remote)
        if pipelined is None:  # paramiko without the internals: two round trips
            real = self.resolve(op, path, sftp, remote)
            return self.lstat_resolved(op, path, sftp, real), real
        real, attrs = pipelined
        if not self.inside(real):
            raise PathInvalidError(op, self.service, path, _OUTSIDE)
        if real != remote:
            # A link on the way that stays inside: what it resolved to is stat'ed now.
            return self.lstat_resolved(op, path, sftp, real), real
        if attrs is None:
            raise FileNotFoundError(errno.ENOENT, "No such file")
        if stat_module.S_ISLNK(attrs.st_mode or 0):
            raise PathInvalidError(op, self.service, path, _CHANGED)
        return attrs, real

    def lstat_resolved(
        self, op: str, path: str, sftp: paramiko.SFTPClient, real: str
    ) -> paramiko.SFTPAttributes:
        """Lstat a path :meth:`resolve` returned; a link there now is refused.

        Raises:
            PathInvalidError: A link appeared at the resolved path.
            FileNotFoundError: Nothing is there.
        """
        attrs = sftp.lstat(real)
        if stat_module.S_ISLNK(attrs.st_mode or 0):
            raise PathInvalidError(op, self.service, path, _CHANGED)
        return attrs

    def makedirs(self, op: str, path: str, sftp: paramiko.SFTPClient, remote_dir: str) -> str:
        """Create ``remote_dir`` and its parents under the root; return its real path.

        The deepest existing ancestor is resolved (and must stay inside) before
        anything is created under it, and every directory is created under that real
        path, never through a link.

        Raises:
            PathInvalidError: An ancestor resolves outside the root, or the created
                path changed while it was created.
            ObjectModeInvalidError: An ancestor is a file.
        """
        missing: list[str] = []
        current = remote_dir
        while current != self.root and len(current) > len(self.root):
            try:
                info = sftp.stat(current)
            except FileNotFoundError:
                current, name = posixpath.split(current)
                missing.append(name)
                continue
            if not stat_module.S_ISDIR(info.st_mode or 0):
                raise ObjectModeInvalidError(op, self.service, path, "a parent is not a directory")
            break
        real = self.resolve(op, path, sftp, current)
        if not missing:
            return real
        for name in reversed(missing):
            real = posixpath.join(real, name)
            try:
                sftp.mkdir(real)
            except OSError:
                # Created meanwhile by another writer? Then it must be a directory.
                if not stat_module.S_ISDIR(sftp.lstat(real).st_mode or 0):
                    raise
        # What was created must still be what it was created as: no link on the way.
        if sftp.normalize(real) != real:
            raise PathInvalidError(op, self.service, path, _CHANGED)
        return real
