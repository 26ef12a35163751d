"""Audited: an append-only, ordered record of every change, kept in another store.

Written once: ``storager/aio/combinators/_audited.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_audited.py`` from it. The records
are ``storager/combinators/_audit_records.py``'s: each mutating operation, failed or
not, becomes one JSON object in the log store under ``<prefix><sequence>.json``, and key
order is record order. ``read_audit`` replays the log in that order.

One Audited writes a given log at a time: it numbers on after the highest record it
finds (read before its first change), so a second writer to the same prefix could
reuse numbers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from storager._async_protocols import AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Object
from storager._protocols import Copier, Mover, Presigner
from storager.aio.combinators._audit_records import async_hash_as_read
from storager.aio.combinators._base import AsyncOrderLock, Call, async_capabilities_of, call_child
from storager.aio.combinators._delegate import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateCopier,
    AsyncDelegateMover,
)
from storager.combinators._audit_records import (
    AuditRecord,
    audit_target,
    make_record,
    record_fields,
    record_lost,
)
from storager.combinators._base import MUTATING

__all__ = ["AsyncAudited", "read_audit_async"]

T = TypeVar("T")


class AsyncAudited(AsyncDelegate):
    """Record every mutating operation of ``inner`` in ``log_store``.

    Args:
        inner: The store to audit; its capabilities are kept, except Presigner: a
            PUT through a signed URL would change the store without a record.
        log_store: Where the records go (it is closed with the Audited).
        prefix: The directory of the records in ``log_store``.

    Raises:
        UnexpectedError: An operation succeeded but its record could not be written
            (the error says so; the change itself is in place).

    The log is read for its last number before the first record is written;
    ``open`` builds one and reads it at once.
    """

    combinator = "audited"

    def __init__(
        self, inner: AsyncStorager, log_store: AsyncStorager, *, prefix: str = "audit/"
    ) -> None:
        super().__init__(inner)
        if not isinstance(log_store, AsyncStorager):
            raise InvalidArgumentError(
                "new", "audited", "", "log_store must be a store (AsyncStorager)"
            )
        self._log = log_store
        self._prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        self._seq: int | None = None  # the last record's number, once read from the log
        self._seq_lock = threading.Lock()
        self._order = AsyncOrderLock()  # records are written one at a time, in order

    @classmethod
    async def open(
        cls, inner: AsyncStorager, log_store: AsyncStorager, *, prefix: str = "audit/"
    ) -> AsyncAudited:
        """Return an Audited that has read where the log's numbering goes on."""
        audited: AsyncAudited = cls(inner, log_store, prefix=prefix)
        await audited._numbered()
        return audited

    @classmethod
    def _allowed_capabilities(
        cls, inner: object = None, *args: Any, **kwargs: Any
    ) -> frozenset[type]:
        return async_capabilities_of(inner) - {Presigner}

    def children(self) -> Mapping[str, AsyncStorager]:
        return {"inner": self._inner, "log": self._log}

    def describe_label(self) -> str:
        return f"audited log={self._prefix}"

    async def _numbered(self) -> None:
        """Read the log's last number, once: before the first change, so a log that
        cannot be read refuses the change rather than lose its record."""
        if self._seq is not None:
            return
        async with self._order:
            if self._seq is None:
                records = read_audit_async(self._log, self._prefix)
                last = max([r.seq async for r in records], default=0)
                with self._seq_lock:
                    self._seq = max(self._seq or 0, last)

    async def _record(self, **fields: Any) -> None:
        await self._numbered()
        async with self._order:
            with self._seq_lock:
                self._seq = seq = (self._seq or 0) + 1
                record, key, body = make_record(seq, self._prefix, fields)
            try:
                await self._log.write(key, body)
            except Exception as exc:
                with self._seq_lock:
                    if self._seq == seq:  # give the number back unless a later one was taken
                        self._seq = seq - 1
                raise record_lost(record, exc) from exc

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        if op not in MUTATING or op == "write":
            return await call_child(self._inner, op, path, fn)
        await self._numbered()
        try:
            result = await call_child(self._inner, op, path, fn)
        except Exception as exc:
            target = audit_target.get() or None
            await self._record(operation=op, path=path, outcome=type(exc).__name__, target=target)
            raise
        await self._record(**record_fields(op, path, result))
        return result

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        await self._numbered()
        hashed, payload = async_hash_as_read(path, data)
        try:
            obj = await super().write(path, payload, **pairs)
        except Exception as exc:
            await self._record(operation="write", path=path, outcome=type(exc).__name__)
            raise
        await self._record(operation="write", path=path, size=hashed.size, checksum=hashed.checksum)
        return obj


class _AsyncAuditedCopier(AsyncDelegateCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        token = audit_target.set(dst)
        try:
            await super().copy(src, dst, **pairs)
        finally:
            audit_target.reset(token)


class _AsyncAuditedMover(AsyncDelegateMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        token = audit_target.set(dst)
        try:
            await super().move(src, dst, **pairs)
        finally:
            audit_target.reset(token)


AsyncAudited._capability_mixins = {
    **ASYNC_DELEGATE_MIXINS,
    Copier: _AsyncAuditedCopier,
    Mover: _AsyncAuditedMover,
}


async def read_audit_async(
    log_store: AsyncStorager, prefix: str = "audit/"
) -> AsyncIterator[AuditRecord]:
    """Yield the records of an audit log in the order they were written."""
    prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    keys = sorted(
        [
            o.path
            async for o in log_store.list(prefix, list_mode="prefix")
            if o.path.rpartition("/")[2].endswith(".json")
        ]
    )
    for key in keys:
        yield AuditRecord(**json.loads(await log_store.read(key)))
