"""Paused listings: page N+1 of a listing continues where page N stopped.

The store protocol lists from a path's start (there is no start-after), so without this
every page would walk the keys before it again: 10 pages of 1,000 keys would read 55,000
entries. A truncated page leaves its listing here under (prefix, delimiter, last key);
the request for the next page, which names that last key as its marker, takes it back.
A paused listing lives :data:`TTL` seconds and at most :data:`LIMIT` are kept per bucket;
one that is gone or fails is simply walked again from the start.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator

from storager._object import Object

__all__ = ["LIMIT", "TTL", "PausedListings"]

TTL = 60.0
LIMIT = 128

_Key = tuple[str, str, str]


class PausedListings:
    """Listings left at a page's end, by (prefix, delimiter, last key); thread-safe."""

    def __init__(self) -> None:
        self._paused: OrderedDict[_Key, tuple[float, Iterator[Object]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: _Key, rest: Iterator[Object]) -> None:
        with self._lock:
            self._paused[key] = (time.monotonic() + TTL, rest)
            self._paused.move_to_end(key)
            while len(self._paused) > LIMIT:
                self._paused.popitem(last=False)

    def take(self, key: _Key) -> Iterator[Object] | None:
        with self._lock:
            found = self._paused.pop(key, None)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]
