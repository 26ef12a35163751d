"""A sync store over an async one, for running the sync conformance suite on the async side.

Every call runs the async operation to completion in a fresh event loop
(``asyncio.run``), so the suite also proves that the async store is bound to no loop:
each operation, and each read of a reader, comes from a loop of its own.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

from storager._async_protocols import ASYNC_CAPABILITIES, AsyncStorager
from storager._async_types import AsyncReader
from storager._capability import OPERATIONS
from storager._object import StorageMeta
from storager._protocols import CAPABILITIES, Storager

__all__ = ["blocking"]


class _Bridge(Storager):
    """The sync face of an async store; see the module docstring."""

    def __init__(self, store: AsyncStorager) -> None:
        self.async_store = store

    def metadata(self) -> StorageMeta:
        return self.async_store.metadata()

    def close(self) -> None:
        asyncio.run(self.async_store.close())

    def __repr__(self) -> str:
        return f"<blocking {self.async_store!r}>"


def _collect(op: str) -> Callable[..., Iterator[Any]]:
    def method(self: _Bridge, *args: Any, **pairs: Any) -> Iterator[Any]:
        async def gather() -> list[Any]:
            return [item async for item in getattr(self.async_store, op)(*args, **pairs)]

        return iter(asyncio.run(gather()))

    return method


def _open_reader(self: _Bridge, *args: Any, **pairs: Any) -> BinaryIO:
    reader = asyncio.run(self.async_store.open_reader(*args, **pairs))
    return cast(BinaryIO, io.BufferedReader(_SyncReader(reader)))


def _await(op: str) -> Callable[..., Any]:
    def method(self: _Bridge, *args: Any, **pairs: Any) -> Any:
        return asyncio.run(getattr(self.async_store, op)(*args, **pairs))

    return method


class _SyncReader(io.RawIOBase):
    """A sync raw reader over an async one, each call in a fresh loop."""

    def __init__(self, reader: AsyncReader) -> None:
        super().__init__()
        self._reader = reader

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return asyncio.run(self._reader.readinto(memoryview(buffer).cast("B")))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return asyncio.run(self._reader.seek(offset, whence))

    def tell(self) -> int:
        return asyncio.run(self._reader.tell())

    def close(self) -> None:
        if not self.closed:
            asyncio.run(self._reader.close())
        super().close()


_classes: dict[frozenset[str], type[_Bridge]] = {}
_lock = threading.Lock()


def _bridge_class(names: frozenset[str]) -> type[_Bridge]:
    with _lock:
        cls = _classes.get(names)
        if cls is not None:
            return cls
        protocols = [CAPABILITIES[n] for n in CAPABILITIES if n in names]
        namespace: dict[str, Any] = {"__module__": __name__}
        for op, protocol in OPERATIONS.items():
            if protocol != "Storager" and protocol not in names:
                continue
            if op in ("list", "list_multipart"):
                namespace[op] = _collect(op)
            elif op == "open_reader":
                namespace[op] = _open_reader
            else:
                namespace[op] = _await(op)
        name = "Blocking" + (f"[{','.join(sorted(names))}]" if names else "")
        cls = type(name, (*protocols, _Bridge), namespace)
        _classes[names] = cls
        return cls


def blocking(store: AsyncStorager) -> Storager:
    """Return a sync store that runs each call of ``store`` in a fresh event loop.

    It is an instance of the sync twin of every async capability protocol ``store``
    has, so the suite's capability gating sees what the async store declares.
    """
    names = frozenset(n for n, proto in ASYNC_CAPABILITIES.items() if isinstance(store, proto))
    return _bridge_class(names)(store)
