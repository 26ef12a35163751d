"""One served bucket: its store, what the store accepts, and how its calls are run.

Store calls run off the event loop in a bounded pool of threads, except those of a store
whose calls cannot block (the memory service itself, the rule ``storager.aio`` uses for
its inline views): those run on the event loop's thread, saving the hop to a thread and
back that is most of a small request's cost (benchmarks/README.md, the gateway section).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from storager._protocols import Storager
from storager._service import Service
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
        inline: Whether the store's calls cannot block, so they run on the event loop.
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
        self.inline = cannot_block(store)

    def accepts(self, op: str, pair: str) -> bool:
        """Whether the store's ``op`` takes ``pair``."""
        return pair in self._pairs.get(op, frozenset())

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a quick store function: inline if the store cannot block, else in a thread.

        ``fn`` must touch only this bucket's store and must not wait on the event loop.
        """
        if self.inline:
            return fn(*args, **kwargs)
        return await self._limiter.run(fn, *args, **kwargs)

    async def run_threaded(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a store function in a worker thread whatever the store: a long call (a
        copy, a Complete) or one that touches another bucket's store too."""
        return await self._limiter.run(fn, *args, **kwargs)

    async def run_streaming(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call a store function that consumes a request body as it arrives.

        It runs in threads of its own, so uploads waiting on slow clients never hold the
        threads quick calls (stat, small reads) need.
        """
        return await self._streams.run(fn, *args, **kwargs)


def cannot_block(store: Storager) -> bool:
    """Whether every call of ``store`` returns without waiting on I/O or another thread.

    The memory service itself (not a combinator over it, whose other stores may block).
    """
    return isinstance(store, Service) and store.service_name == "memory"
