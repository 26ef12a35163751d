"""Resume records: an interrupted parallel-parts upload continues where it stopped.

A copy in parts (``_parts.py``) into a Segmenter keeps a small record on local disk,
one file per destination object, named by a hash of the destination's store URL,
identity and path (so the file name shows no secret of the URL)::

    {"upload_id": ..., "source": ..., "size": ..., "modified": ..., "etag": ..., "part_size": ...}
    {"part": 1, "size": 8388608, "etag": "..."}
    {"part": 3, "size": 8388608, "etag": "..."}

The first line says which upload and which source version; each later line is a part
the service acknowledged, appended as it arrives (one ``write`` of one short line, so a
process killed at any moment leaves whole lines). A re-run of the same copy finds the
record, and reuses a listed part only if the source is still the same version (size,
modification time and ETag as stat'ed: an upload whose source changed is aborted, never
completed) and the part's size and ETag equal the ones recorded. The rest is uploaded
again. The record goes when the upload completes or is aborted.

The records live in ``$STORAGER_RESUME_DIR``, else ``$XDG_STATE_HOME/storager/uploads``,
else ``~/.local/state/storager/uploads``. That directory is made with mode 0700, and used
only if this user owns it and no one else may write to it (else, said on stderr, copies
go on without records: a failure aborts the upload). A record is written under a random
name (created exclusively, 0600, never through a symlink) then renamed into place, and
read or appended to only if it is a regular file of this user, never through a symlink:
no other user can make a copy write to a file of theirs or resume an upload of theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storager._errors import PermissionDeniedError
from storager._object import Object, Part
from storager._protocols import Storager

__all__ = ["RESUME_DIR_ENV", "PendingUpload", "UploadRecord", "resume_dir", "source_version"]

#: The environment variable naming the directory of the resume records.
RESUME_DIR_ENV = "STORAGER_RESUME_DIR"


def resume_dir() -> Path:
    """Return the directory of the resume records (it may not exist yet)."""
    explicit = os.environ.get(RESUME_DIR_ENV)
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "storager" / "uploads"


def source_version(source: str, stat: Object, part_size: int) -> dict[str, Any]:
    """Return what must match for an upload to be resumed: source, version, part size.

    The times are compared as stat'ed (to the microsecond where the store keeps them),
    the ETag too where the source has one (s3 as a source).
    """
    modified = stat.last_modified.isoformat() if stat.last_modified is not None else ""
    return {
        "source": source,
        "size": stat.content_length or 0,
        "modified": modified,
        "etag": stat.etag or "",
        "part_size": part_size,
    }


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An upload found in a record: its id, the source version, the parts acknowledged."""

    upload_id: str
    version: dict[str, Any]
    parts: dict[int, Part]


class UploadRecord:
    """The resume record of uploads to one destination object.

    Args:
        directory: Where records are kept (:func:`resume_dir`).
        store_url: The destination's connection string, as the user gave it.
        store: The destination store (its service, name and work_dir join the key).
        path: The destination object's store-absolute path.
        source: What is copied there (the source's URL and path): an upload from another
            source is not resumed.
    """

    def __init__(
        self, directory: Path, store_url: str, store: Storager, path: str, source: str
    ) -> None:
        self.source = source
        meta = store.metadata()
        key = json.dumps([store_url, meta.service, meta.name, meta.work_dir, path])
        self.file = directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".jsonl")
        self._fd: int | None = None
        #: Whether a failed copy left its upload and this record for a re-run.
        self.kept = False

    def pending(self) -> PendingUpload | None:
        """Return the upload the record names, or None (no record, or an unreadable one).

        A record that is a symlink, not a regular file or not owned by this user is not
        trusted: None.
        """
        try:
            with _opened_directory(self.file.parent, create=False) as directory:
                fd = os.open(self.file.name, _READ_FLAGS, dir_fd=directory)
            with os.fdopen(fd, "rb") as handle:
                if not _is_own_file(os.fstat(handle.fileno())):
                    return None
                lines = handle.read().decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        try:
            header = json.loads(lines[0])
            upload_id = str(header.pop("upload_id"))
        except (IndexError, ValueError, KeyError, TypeError, AttributeError):
            return None
        parts: dict[int, Part] = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                part = Part(int(entry["part"]), int(entry["size"]), str(entry["etag"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: that part is sent again
            parts[part.number] = part
        return PendingUpload(upload_id, header, parts)

    def start(self, upload_id: str, version: dict[str, Any]) -> bool:
        """Write a new record for ``upload_id``; return False if it cannot be written.

        An upload without a record still works; it just cannot be resumed. The record is
        written to a new file of a random name (created exclusively, mode 0600, never
        through a symlink), then renamed over the old record, and kept open to append to.
        """
        self.close()
        header = json.dumps({"upload_id": upload_id, **version}, sort_keys=True) + "\n"
        partial = f"{self.file.stem}.{secrets.token_hex(8)}.tmp"
        try:
            with _opened_directory(self.file.parent, create=True) as directory:
                fd = os.open(partial, _CREATE_FLAGS, 0o600, dir_fd=directory)
                try:
                    os.write(fd, header.encode())
                    os.replace(partial, self.file.name, src_dir_fd=directory, dst_dir_fd=directory)
                except BaseException:
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.unlink(partial, dir_fd=directory)
                    raise
        except OSError:
            return False
        self._fd = fd
        return True

    def reopen(self) -> bool:
        """Append to the existing record (a resumed upload); False if it cannot be."""
        self.close()
        try:
            with _opened_directory(self.file.parent, create=False) as directory:
                fd = os.open(self.file.name, _APPEND_FLAGS, dir_fd=directory)
            if not _is_own_file(os.fstat(fd)):
                os.close(fd)
                return False
        except OSError:
            return False
        self._fd = fd
        return True

    def add(self, part: Part) -> None:
        """Record that the service acknowledged ``part`` (one line, one write)."""
        if self._fd is None:
            return
        line = json.dumps({"part": part.number, "size": part.size, "etag": part.etag}) + "\n"
        with contextlib.suppress(OSError):  # a part not recorded is only sent again
            os.write(self._fd, line.encode())

    def remove(self) -> None:
        """Drop the record: its upload completed or was aborted."""
        self.close()
        with (
            contextlib.suppress(OSError),
            _opened_directory(self.file.parent, create=False) as directory,
        ):
            os.unlink(self.file.name, dir_fd=directory)  # a symlink itself, not its target

    def keep(self) -> None:
        """Leave the upload and the record for a re-run (the copy failed or was stopped)."""
        self.kept = True
        self.close()

    def close(self) -> None:
        """Stop appending; the record stays for a re-run."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# Never through a symlink; a FIFO planted there must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _is_own_file(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()


@contextlib.contextmanager
def _opened_directory(directory: Path, *, create: bool) -> Iterator[int]:
    """Yield a descriptor of the records directory, made (mode 0700) if ``create``.

    Raises:
        PermissionDeniedError: The directory is not owned by this user, or others may
            write to it (another user could plant a symlink or a record there); said
            once per directory on stderr, the copy then goes on without a record.
        OSError: It does not exist or cannot be opened.
    """
    if create:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        reason = ""
        if info.st_uid != os.getuid():
            reason = f"owned by uid {info.st_uid}, not by this user (uid {os.getuid()})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            reason = f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
        if reason:
            refused = PermissionDeniedError("resume", "", str(directory), reason)
            _warn_once(str(directory), refused)
            raise refused
        yield fd
    finally:
        os.close(fd)


def _warn_once(key: str, error: PermissionDeniedError) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    sys.stderr.write(
        f"storager: resume records not used: {error}; a failed upload is aborted"
        " and cannot be resumed\n"
    )
    sys.stderr.flush()
