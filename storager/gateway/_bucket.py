"""One served bucket: its store, what the store accepts, and the thread limiter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from storager._protocols import Storager
from storager.gateway._limiter import ThreadLimiter
from storager.gateway._paused import PausedListings

__all__ = ["Bucket"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Bucket:
    """A store served as an S3 bucket.

    Attributes:
        name: The bucket's name.
        store: The store; keys are paths relative to its work_dir.
        created: When the gateway started serving it (ListBuckets' CreationDate).
        sorted_listing: Whether the store lists in key order (else pages are sorted).
    """

    def __init__(
        self,
        name: str,
        store: Storager,
        limiter: ThreadLimiter,
        streams: ThreadLimiter | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.created = datetime.now(UTC)
        self._limiter = limiter
        self._streams = streams or limiter
        capability = store.metadata().capability
        self._pairs = {op: frozenset(pairs) for op, pairs in capability.operations.items()}
        self.sorted_listing = bool(capability.list_sorted)
        self.paused = PausedListings()

    def accepts(self, op: str, pair: str) -> bool:
        """Whether the store's ``op`` takes ``pair``."""
        return pair in self._pairs.get(op, frozenset())

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a blocking store function in a worker thread."""
        return await self._limiter.run(fn, *args, **kwargs)

    async def run_streaming(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a store function that consumes a request body as it arrives.

        It runs in threads of its own, so uploads waiting on slow clients never hold the
        threads quick calls (stat, small reads) need.
        """
        return await self._streams.run(fn, *args, **kwargs)
