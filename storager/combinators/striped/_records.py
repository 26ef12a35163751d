"""Striped's own records in the manifest store, under the reserved ``.striped/`` prefix.

- ``.striped/degraded/<generation>``: an object written or found with fragments
  missing or corrupt, for ``heal()`` (JSON ``{"path": key, "problems": [...]}``);
- ``.striped/uploads/<upload_id>/upload``: a multipart upload in progress (its path
  and the pairs given at creation);
- ``.striped/uploads/<upload_id>/part-<number>``: one part, a chunk group (its
  stripes, size and checksum), replaced when the number is written again.

User paths under ``.striped/`` are refused, and listings never show them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from storager._errors import NotFoundError, StorageError, UnexpectedError
from storager._protocols import Storager

__all__ = ["RESERVED", "Records", "is_reserved", "restate"]

RESERVED = ".striped/"
_DEGRADED = RESERVED + "degraded/"
UPLOADS = RESERVED + "uploads/"


def is_reserved(key: str) -> bool:
    """Return whether a manifest-store key (relative, no leading ``/``) is Striped's own."""
    return key == RESERVED[:-1] or key.startswith(RESERVED)


def restate(exc: Exception, op: str, path: str, what: str = "manifest store") -> StorageError:
    """Return a child's error as Striped's: same class, Striped's op and path.

    The child's error is chained as the cause. An error that is not a storager error
    (or cannot be rebuilt) becomes an UnexpectedError naming it.
    """
    if isinstance(exc, StorageError):
        try:
            new = type(exc)(op, "striped", path, f"{what}: {exc.reason}")
        except Exception:
            new = UnexpectedError(op, "striped", path, f"{what}: {exc}")
    else:
        new = UnexpectedError(op, "striped", path, f"{what}: {type(exc).__name__}: {exc}")
    new.__cause__ = exc
    return new


class Records:
    """Read and write Striped's own records in the manifest store."""

    def __init__(self, manifests: Storager) -> None:
        self.store = manifests

    # -- degraded objects ---------------------------------------------------------------

    def mark_degraded(self, key: str, generation: str, problems: list[str]) -> None:
        """Record that the object at ``key`` (this generation) needs ``heal``."""
        body = json.dumps({"path": key, "problems": problems[:20]}).encode()
        self.store.write(_DEGRADED + generation, body)

    def degraded(self) -> Iterator[tuple[str, str]]:
        """Yield ``(generation, key)`` of every object recorded as degraded."""
        for obj in list(self.store.list(_DEGRADED, list_mode="prefix")):
            generation = obj.path.rpartition("/")[2]
            try:
                doc = json.loads(self.store.read(obj.path))
            except (NotFoundError, ValueError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("path"), str):
                yield generation, doc["path"]

    def clear_degraded(self, generation: str) -> None:
        """Forget a degraded record (healed, or its object replaced)."""
        with contextlib.suppress(NotFoundError):
            self.store.delete(_DEGRADED + generation)

    # -- multipart uploads --------------------------------------------------------------

    def upload_key(self, upload_id: str) -> str:
        """Return the key of an upload's record."""
        return f"{UPLOADS}{upload_id}/upload"

    def part_key(self, upload_id: str, number: int) -> str:
        """Return the key of one part's record."""
        return f"{UPLOADS}{upload_id}/part-{number:05d}"

    def write_json(self, key: str, doc: Any) -> None:
        """Write a JSON record."""
        self.store.write(key, json.dumps(doc, separators=(",", ":")).encode())

    def read_json(self, key: str) -> Any:
        """Read a JSON record (NotFoundError when absent)."""
        return json.loads(self.store.read(key))

    def part_keys(self, upload_id: str) -> list[str]:
        """Return the keys of an upload's part records, by part number."""
        prefix = f"{UPLOADS}{upload_id}/part-"
        return sorted(
            obj.path for obj in self.store.list(prefix, list_mode="prefix") if not obj.is_dir
        )

    def upload_ids(self) -> list[str]:
        """Return the id of every multipart upload in progress."""
        return [
            obj.path.split("/")[-2]
            for obj in self.store.list(UPLOADS, list_mode="prefix")
            if not obj.is_dir and obj.path.endswith("/upload")
        ]
