"""Temporary files of fs writes, and the removal of those their writers abandoned.

A write creates ``.storager-tmp-<store token>-<n>`` beside its target and renames it
into place; listings hide such names and no object may take one. A writer killed
mid-write leaves its temporary file behind. One whose modification time is older than
a cutoff is taken as abandoned (a live writer keeps writing, so its file's time keeps
moving); a younger one may belong to a write in flight and is kept.
"""

from __future__ import annotations

import contextlib
import os

from storager.services.fs._beneath import Beneath

__all__ = ["TEMP_PREFIX", "remove_stale", "sweep"]

#: Temporary files of in-flight writes start with this; listings hide them and no
#: object may be named so.
TEMP_PREFIX = ".storager-tmp-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def remove_stale(dir_fd: int, cutoff: float) -> int | None:
    """Empty a directory that holds only temporary files of stale writes.

    Returns:
        None, touching nothing, when the directory holds anything but temporary
        files; otherwise how many younger (possibly live) temporary files remain.
    """
    with os.scandir(dir_fd) as it:
        entries = list(it)
    if not all(
        e.name.startswith(TEMP_PREFIX) and e.is_file(follow_symlinks=False) for e in entries
    ):
        return None
    young = 0
    for entry in entries:
        if not _remove_if_stale(dir_fd, entry, cutoff):
            young += 1
    return young


def sweep(root: Beneath, cutoff: float) -> int:
    """Remove every temporary file under ``root`` last modified before ``cutoff``."""
    return _sweep_dir(root.fd, cutoff)


def _sweep_dir(dir_fd: int, cutoff: float) -> int:
    removed = 0
    subdirs: list[str] = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            elif entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                removed += _remove_if_stale(dir_fd, entry, cutoff)
    for name in subdirs:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # gone, or swapped for a link, since it was listed: not descended
        try:
            removed += _sweep_dir(child, cutoff)
        finally:
            os.close(child)
    return removed


def _remove_if_stale(dir_fd: int, entry: os.DirEntry[str], cutoff: float) -> bool:
    """Unlink one temporary file if it was last modified before ``cutoff``."""
    try:
        if os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False).st_mtime >= cutoff:
            return False
    except FileNotFoundError:
        return True  # renamed into place or removed meanwhile
    with contextlib.suppress(FileNotFoundError):
        os.unlink(entry.name, dir_fd=dir_fd)
    return True
