"""AsyncAudited: Audited's records (``storager.combinators._audited``) for an async store."""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from storager._async_protocols import AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Object
from storager._protocols import Copier, Mover, Presigner
from storager.aio._native import _is_async, async_chunks
from storager.aio.combinators._base import (
    ASYNC_DELEGATE_MIXINS,
    AsyncDelegate,
    AsyncDelegateCopier,
    AsyncDelegateMover,
    Call,
    async_capabilities_of,
)
from storager.combinators._audited import (
    AuditRecord,
    Hashed,
    _target,
    make_record,
    record_fields,
    record_lost,
)
from storager.combinators._base import MUTATING

__all__ = ["AsyncAudited", "read_audit_async"]

T = TypeVar("T")


class AsyncAudited(AsyncDelegate):
    """Record every mutating operation of an async store in an async log store.

    The twin of :class:`~storager.combinators.Audited`: the same records, keys and
    rules. Build it with :meth:`open`, which finds where the log's numbering goes on.
    """

    combinator = "audited"

    def __init__(
        self, inner: AsyncStorager, log_store: AsyncStorager, *, prefix: str, seq: int
    ) -> None:
        super().__init__(inner)
        if not isinstance(log_store, AsyncStorager):
            raise InvalidArgumentError("new", "audited", "", "log_store must be an AsyncStorager")
        self._log = log_store
        self._prefix = prefix
        self._seq = seq
        self._seq_lock = threading.Lock()
        # Records are written one at a time, in order; an asyncio lock belongs to a loop.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    async def open(
        cls, inner: AsyncStorager, log_store: AsyncStorager, *, prefix: str = "audit/"
    ) -> AsyncAudited:
        """Return an AsyncAudited that numbers on after the log's last record."""
        prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        seq = max([r.seq async for r in read_audit_async(log_store, prefix)], default=0)
        audited: AsyncAudited = cls(inner, log_store, prefix=prefix, seq=seq)
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

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._seq_lock:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _record(self, **fields: Any) -> None:
        async with self._loop_lock():
            with self._seq_lock:
                self._seq += 1
                record, key, body = make_record(self._seq, self._prefix, fields)
            try:
                await self._log.write(key, body)
            except Exception as exc:
                with self._seq_lock:
                    self._seq -= 1
                raise record_lost(record, exc) from exc

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        if op not in MUTATING or op == "write":
            return await fn(self._inner)
        try:
            result = await fn(self._inner)
        except Exception as exc:
            await self._record(
                operation=op, path=path, outcome=type(exc).__name__, target=_target.get() or None
            )
            raise
        await self._record(**record_fields(op, path, result))
        return result

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        if _is_async(data):
            hashed = Hashed(path, b"")
            payload: AsyncWriteData = _hashing(hashed, path, data)
        else:
            hashed = Hashed(path, data)  # type: ignore[arg-type]
            payload = hashed.payload
        try:
            obj = await super().write(path, payload, **pairs)
        except Exception as exc:
            await self._record(operation="write", path=path, outcome=type(exc).__name__)
            raise
        await self._record(operation="write", path=path, size=hashed.size, checksum=hashed.checksum)
        return obj


async def _hashing(hashed: Hashed, path: str, data: AsyncWriteData) -> AsyncIterator[bytes]:
    async for chunk in async_chunks("write", "audited", path, data):
        hashed.add(chunk)
        yield bytes(chunk)


class _AsyncAuditedCopier(AsyncDelegateCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        token = _target.set(dst)
        try:
            await super().copy(src, dst, **pairs)
        finally:
            _target.reset(token)


class _AsyncAuditedMover(AsyncDelegateMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        token = _target.set(dst)
        try:
            await super().move(src, dst, **pairs)
        finally:
            _target.reset(token)


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
