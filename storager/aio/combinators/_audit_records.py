"""A write's hashing for the async form of Audited: async data hashed as the store reads it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from storager._async_types import AsyncWriteData
from storager.aio._native import _is_async, async_chunks
from storager.combinators._audit_records import Hashed

__all__ = ["async_hash_as_read"]


def async_hash_as_read(path: str, data: AsyncWriteData) -> tuple[Hashed, AsyncWriteData]:
    """Return a write's hasher and the data to hand on, hashed as the store reads it."""
    if _is_async(data):
        hashed = Hashed(path, b"")
        return hashed, _hashing(hashed, path, data)
    hashed = Hashed(path, data)  # type: ignore[arg-type]
    return hashed, hashed.payload


async def _hashing(hashed: Hashed, path: str, data: AsyncWriteData) -> AsyncIterator[bytes]:
    async for chunk in async_chunks("write", "audited", path, data):
        hashed.add(chunk)
        yield bytes(chunk)
