"""Waiting for the view's threads under an async library other than asyncio (trio).

The async view's calls run on its own bounded thread pool whatever the library; only
the waiting differs. Under asyncio the view uses the running loop directly. Elsewhere
(trio, or asyncio code run by anyio's trio backend) it uses anyio's portable
primitives: an event set from the worker thread through the loop's token, and
``from_thread.run`` to pull an async data source from the thread that writes.
anyio is imported only here, on first use, so asyncio users need not install it
(``pip install storager[trio]`` does).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from storager._errors import CapabilityInsufficientError

__all__ = ["puller", "to_thread", "wait_on"]

T = TypeVar("T")


def _anyio() -> Any:
    try:
        import anyio
        import anyio.from_thread
        import anyio.lowlevel
        import anyio.to_thread
    except ImportError as exc:  # pragma: no cover - anyio ships with the test extra
        raise CapabilityInsufficientError(
            "aio",
            "aio",
            "",
            "the async view runs outside asyncio (trio) through anyio: pip install storager[trio]",
        ) from exc
    return anyio


async def wait_on(executor: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    """Run ``call`` on ``executor`` and wait for it without blocking the running loop.

    A cancelled caller stops waiting (as asyncio's ``run_in_executor`` does); the
    call itself runs to its end on its thread.
    """
    anyio = _anyio()
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    loop_thread = threading.get_ident()

    def wake(_: Future[T]) -> None:
        if threading.get_ident() == loop_thread:
            done.set()  # the call had finished already: add_done_callback runs us here
            return
        with contextlib.suppress(Exception):  # the loop may have ended meanwhile
            anyio.from_thread.run_sync(done.set, token=token)

    future = executor.submit(call)
    future.add_done_callback(wake)
    await done.wait()
    return future.result()


def puller() -> Callable[[Callable[[], Any]], Any]:
    """From a worker thread: run a coroutine function on the caller's loop, wait for it."""
    anyio = _anyio()
    token = anyio.lowlevel.current_token()

    def pull(coroutine_function: Callable[[], Any]) -> Any:
        return anyio.from_thread.run(coroutine_function, token=token)

    return pull


async def to_thread(fn: Callable[[], T]) -> T:
    """Run blocking ``fn`` on one of anyio's worker threads."""
    return await _anyio().to_thread.run_sync(fn)  # type: ignore[no-any-return]
