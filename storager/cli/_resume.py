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
else ``~/.local/state/storager/uploads``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        """Return the upload the record names, or None (no record, or an unreadable one)."""
        try:
            lines = self.file.read_text(encoding="utf-8").splitlines()
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

        An upload without a record still works; it just cannot be resumed.
        """
        self.close()
        header = json.dumps({"upload_id": upload_id, **version}, sort_keys=True) + "\n"
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.file.with_suffix(".tmp")
            partial.write_text(header, encoding="utf-8")
            os.replace(partial, self.file)
            self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return False
        return True

    def reopen(self) -> bool:
        """Append to the existing record (a resumed upload); False if it cannot be."""
        self.close()
        try:
            self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return False
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
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()

    def keep(self) -> None:
        """Leave the upload and the record for a re-run (the copy failed or was stopped)."""
        self.kept = True
        self.close()

    def close(self) -> None:
        """Stop appending; the record stays for a re-run."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
