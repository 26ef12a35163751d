"""Audited's records: their shape, keys and bodies, and a write's hashing; shared by both forms.

Each mutating operation, failed or not, becomes one JSON object in the log store under
``<prefix><sequence>.json``; the zero-padded sequence number grows by one per record,
so key order is record order.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from storager._errors import UnexpectedError
from storager._object import Object
from storager._protocols import WriteData
from storager._streams import iter_chunks

__all__ = [
    "AuditRecord",
    "Hashed",
    "audit_target",
    "hash_as_read",
    "make_record",
    "record_fields",
    "record_lost",
]

_DIGITS = 20
#: The destination of the copy or move being recorded.
audit_target: contextvars.ContextVar[str] = contextvars.ContextVar("audited_target", default="")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited operation.

    Attributes:
        seq: Its place in the log, from 1.
        time: When it finished, ISO 8601 in UTC.
        operation: The operation's name.
        path: The path it was given (for copy and move, the source).
        size: Bytes written, when known.
        outcome: ``"ok"`` or the error's class name.
        checksum: ``sha256:<hex>`` of the data a write stored, when it succeeded.
        target: The destination of a copy or move.
    """

    seq: int
    time: str
    operation: str
    path: str
    size: int | None = None
    outcome: str = "ok"
    checksum: str | None = None
    target: str | None = None


def make_record(seq: int, prefix: str, fields: dict[str, Any]) -> tuple[AuditRecord, str, bytes]:
    """Return record ``seq`` of ``fields``, its key under ``prefix`` and its JSON body."""
    if not isinstance(fields.get("path"), str):
        # A refused non-str path is still an attempt worth a record; JSON takes its repr.
        fields["path"] = repr(fields.get("path"))
    record = AuditRecord(seq=seq, time=datetime.now(UTC).isoformat(), **fields)
    key = f"{prefix}{record.seq:0{_DIGITS}d}.json"
    return record, key, json.dumps(asdict(record), sort_keys=True).encode()


def record_lost(record: AuditRecord, exc: Exception) -> UnexpectedError:
    """Return the error of an operation whose audit record could not be written."""
    return UnexpectedError(
        record.operation,
        "audited",
        record.path,
        f"the audit record could not be written ({type(exc).__name__}); "
        f"the operation's outcome was {record.outcome}",
    )


def record_fields(op: str, path: str, result: object) -> dict[str, Any]:
    """Return the fields of a successful change's record (``size`` when it tells)."""
    sized = ("append", "complete_multipart")
    size = result.content_length if isinstance(result, Object) and op in sized else None
    return {"operation": op, "path": path, "size": size, "target": audit_target.get() or None}


class Hashed:
    """A write's data, counted and hashed as the store reads it (for its record)."""

    def __init__(self, path: str, data: WriteData) -> None:
        self._digest = hashlib.sha256()
        self.size = 0
        self.payload: WriteData
        if isinstance(data, bytes | bytearray | memoryview):
            self._digest.update(data)
            self.size = memoryview(data).nbytes
            self.payload = data
        else:
            self.payload = self._hashing(iter_chunks("write", "audited", path, data))

    def _hashing(self, chunks: Iterable[Any]) -> Iterator[bytes]:
        for chunk in chunks:
            self.add(chunk)
            yield chunk

    def add(self, chunk: Any) -> None:
        """Count and hash one chunk."""
        self._digest.update(chunk)
        self.size += len(chunk)

    @property
    def checksum(self) -> str:
        """``sha256:<hex>`` of what was read."""
        return f"sha256:{self._digest.hexdigest()}"


def hash_as_read(path: str, data: WriteData) -> tuple[Hashed, WriteData]:
    """Return a write's hasher and the data to hand on, hashed as the store reads it."""
    hashed = Hashed(path, data)
    return hashed, hashed.payload
