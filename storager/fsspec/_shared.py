"""Stores opened from connection strings, shared per process by every filesystem using them.

fsspec makes a new filesystem for each new set of arguments (and for ``asynchronous=True``),
but a ``memory://`` store keeps its objects in the instance: sharing the store by its
connection string and pairs makes every ``storager+memory://`` filesystem of a process see
the same objects, as fsspec's own ``memory://`` does, and reuses connections elsewhere.
These stores live as long as the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from storager._protocols import Storager
from storager._registry import open as open_store

__all__ = ["shared_store"]

_lock = threading.Lock()
_stores: dict[tuple[str, str], Storager] = {}


def shared_store(url: str, pairs: Mapping[str, Any]) -> Storager:
    """Return this process's store for ``url`` and ``pairs``, opening it the first time."""
    key = (url, repr(sorted(pairs.items())))
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = open_store(url, **pairs)
            _stores[key] = store
        return store
