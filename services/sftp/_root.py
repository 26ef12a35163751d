"""Keeping an sftp store inside its root directory on the server.

``..`` never reaches here (the core's path rules refuse it); what remains is symbolic
links on the server. Directories are resolved with the server's ``realpath``
(``normalize``) and must stay inside the root; objects are ``lstat``-ed, and a link is
followed only when its resolved target stays inside. Checked directories are cached,
as fs does: a directory swapped for an outward link afterwards is caught at the object
level (``lstat``) but not above it.
"""

from __future__ import annotations

import posixpath
import stat as stat_module

import paramiko

from storager._errors import ObjectModeInvalidError, PathInvalidError

__all__ = ["TEMP_PREFIX", "RootGuard", "prepare_root"]

#: Temporary files of in-flight writes start with this; listings hide them and no
#: object may be named so (the same prefix as fs).
TEMP_PREFIX = ".storager-tmp-"
_SAFE_DIR_CACHE_MAX = 4096
_OUTSIDE = "a symbolic link leads outside the store's root"


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

    Attributes:
        root: The root's real path on the server, without a trailing slash.
    """

    def __init__(self, service: str, root: str) -> None:
        self.service = service
        self.root = root
        self._prefix = "" if root == "/" else root
        self._root_slash = root if root.endswith("/") else root + "/"
        self._safe_dirs: dict[str, None] = {}

    def remote(self, op: str, path: str) -> str:
        """Return the server path of a store-absolute path (no trailing slash).

        Raises:
            PathInvalidError: The name is reserved for temporary files.
        """
        stripped = path.rstrip("/")
        if stripped.rpartition("/")[2].startswith(TEMP_PREFIX):
            raise PathInvalidError(
                op, self.service, path, f"names starting with {TEMP_PREFIX!r} are reserved"
            )
        return self._prefix + stripped if stripped else self.root

    def inside(self, real: str) -> bool:
        """Return whether a resolved server path is the root or under it."""
        return real == self.root or real.startswith(self._root_slash)

    def check_dir(self, op: str, path: str, sftp: paramiko.SFTPClient, remote_dir: str) -> None:
        """Raise PathInvalidError unless ``remote_dir`` resolves inside the root."""
        if remote_dir == self.root or remote_dir in self._safe_dirs:
            return
        if not self.inside(sftp.normalize(remote_dir)):
            raise PathInvalidError(op, self.service, path, _OUTSIDE)
        if len(self._safe_dirs) >= _SAFE_DIR_CACHE_MAX:
            self._safe_dirs.clear()
        self._safe_dirs[remote_dir] = None

    def forget(self, remote_dir: str) -> None:
        """Drop a removed directory from the cache."""
        self._safe_dirs.pop(remote_dir, None)

    def attrs(
        self, op: str, path: str, sftp: paramiko.SFTPClient, remote: str
    ) -> tuple[paramiko.SFTPAttributes, str]:
        """Stat an object, following a link only when it stays inside the root.

        Returns the attributes and the server path to open (the link's target).
        """
        self.check_dir(op, path, sftp, posixpath.dirname(remote))
        attrs = sftp.lstat(remote)
        if not stat_module.S_ISLNK(attrs.st_mode or 0):
            return attrs, remote
        real = sftp.normalize(remote)
        if not self.inside(real):
            raise PathInvalidError(op, self.service, path, _OUTSIDE)
        return sftp.stat(real), real

    def makedirs(self, op: str, path: str, sftp: paramiko.SFTPClient, remote_dir: str) -> None:
        """Create ``remote_dir`` and its parents, never through a link out of the root."""
        missing: list[str] = []
        current = remote_dir
        while current != self.root and len(current) > len(self.root):
            try:
                info = sftp.stat(current)
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
                continue
            if not stat_module.S_ISDIR(info.st_mode or 0):
                raise ObjectModeInvalidError(op, self.service, path, "a parent is not a directory")
            break
        # The deepest existing ancestor is checked before anything is created under it.
        self.check_dir(op, path, sftp, current)
        for directory in reversed(missing):
            try:
                sftp.mkdir(directory)
            except OSError:
                # Created meanwhile by another writer? Then it must be a directory.
                if not stat_module.S_ISDIR(sftp.stat(directory).st_mode or 0):
                    raise
        self.check_dir(op, path, sftp, remote_dir)
