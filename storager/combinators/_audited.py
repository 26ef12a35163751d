"""Audited: an append-only, ordered record of every change, kept in another store.

Each mutating operation, failed or not, becomes one JSON object in the log store under
``<prefix><sequence>.json``; the zero-padded sequence number grows by one per record,
so key order is record order. :func:`read_audit` replays the log in that order.

One Audited writes a given log at a time: it starts numbering after the highest
record it finds, so a second writer to the same prefix could reuse numbers.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from storager._errors import InvalidArgumentError, UnexpectedError
from storager._object import Object
from storager._protocols import Copier, Mover, Presigner, Storager, WriteData
from storager._streams import iter_chunks
from storager.combinators._base import (
    DELEGATE_MIXINS,
    MUTATING,
    Delegate,
    DelegateCopier,
    DelegateMover,
    call_child,
    capabilities_of,
)

__all__ = [
    "AuditRecord",
    "Audited",
    "Hashed",
    "make_record",
    "read_audit",
    "record_fields",
    "record_lost",
]

T = TypeVar("T")
_DIGITS = 20
_target: contextvars.ContextVar[str] = contextvars.ContextVar("audited_target", default="")


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


class Audited(Delegate):
    """Record every mutating operation of ``inner`` in ``log_store``.

    Args:
        inner: The store to audit; its capabilities are kept, except Presigner: a
            PUT through a signed URL would change the store without a record.
        log_store: Where the records go (it is closed with the Audited).
        prefix: The directory of the records in ``log_store``.

    Raises:
        UnexpectedError: An operation succeeded but its record could not be written
            (the error says so; the change itself is in place).
    """

    combinator = "audited"

    def __init__(self, inner: Storager, log_store: Storager, *, prefix: str = "audit/") -> None:
        super().__init__(inner)
        if not isinstance(log_store, Storager):
            raise InvalidArgumentError("new", "audited", "", "log_store must be a Storager")
        self._log = log_store
        self._prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        self._lock = threading.Lock()
        self._seq = max((r.seq for r in read_audit(log_store, self._prefix)), default=0)

    @classmethod
    def _allowed_capabilities(
        cls, inner: object = None, *args: Any, **kwargs: Any
    ) -> frozenset[type]:
        return capabilities_of(inner) - {Presigner}

    def children(self) -> Mapping[str, Storager]:
        return {"inner": self._inner, "log": self._log}

    def describe_label(self) -> str:
        return f"audited log={self._prefix}"

    def _record(self, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            record, key, body = make_record(self._seq, self._prefix, fields)
            try:
                self._log.write(key, body)
            except Exception as exc:
                self._seq -= 1
                raise record_lost(record, exc) from exc

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        if op not in MUTATING or op == "write":
            return call_child(self._inner, op, path, fn)
        try:
            result = call_child(self._inner, op, path, fn)
        except Exception as exc:
            self._record(
                operation=op, path=path, outcome=type(exc).__name__, target=_target.get() or None
            )
            raise
        self._record(**record_fields(op, path, result))
        return result

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        hashed = Hashed(path, data)
        try:
            obj = super().write(path, hashed.payload, **pairs)
        except Exception as exc:
            self._record(operation="write", path=path, outcome=type(exc).__name__)
            raise
        self._record(operation="write", path=path, size=hashed.size, checksum=hashed.checksum)
        return obj


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
    return {"operation": op, "path": path, "size": size, "target": _target.get() or None}


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


class _AuditedCopier(DelegateCopier):
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        token = _target.set(dst)
        try:
            super().copy(src, dst, **pairs)
        finally:
            _target.reset(token)


class _AuditedMover(DelegateMover):
    def move(self, src: str, dst: str, **pairs: Any) -> None:
        token = _target.set(dst)
        try:
            super().move(src, dst, **pairs)
        finally:
            _target.reset(token)


Audited._capability_mixins = {
    **DELEGATE_MIXINS,
    Copier: _AuditedCopier,
    Mover: _AuditedMover,
}


def read_audit(log_store: Storager, prefix: str = "audit/") -> Iterator[AuditRecord]:
    """Yield the records of an audit log in the order they were written."""
    prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    keys = sorted(
        o.path
        for o in log_store.list(prefix, list_mode="prefix")
        if o.path.rpartition("/")[2].endswith(".json")
    )
    for key in keys:
        yield AuditRecord(**json.loads(log_store.read(key)))
