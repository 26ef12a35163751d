"""Backend calls off the event loop: a bounded pool of worker threads.

Stores are synchronous, so every store call runs in a worker thread; the pool's size
bounds how many run at once (and so the threads and the stores' own buffers), whatever
the number of connections. Calls beyond it wait their turn on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from storager.gateway._busy_poll import paused

__all__ = ["DEFAULT_THREADS", "ThreadLimiter"]

#: Worker threads per gateway process unless told otherwise.
DEFAULT_THREADS = 32

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ThreadLimiter:
    """Run blocking calls in at most ``threads`` worker threads."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="storager-gateway")

    async def run(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Call ``fn(*args, **kwargs)`` in a worker thread and return its result."""
        loop = asyncio.get_running_loop()
        with paused():  # the loop's polling would hold the GIL the thread needs
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the threads once the calls in progress end."""
        self._pool.shutdown(wait=False, cancel_futures=True)
