"""The async view of a sync store: ``store.aio``, ``storager.aio.async_view(store)``."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, cast

from storager._async_protocols import AsyncStorager
from storager._object import StorageMeta
from storager._protocols import Storager
from storager._service import Service
from storager.aio._bridge import DEFAULT_THREADS, off_loop
from storager.aio._generated import VIEW_MIXINS, AsyncViewCore
from storager.combinators._base import capabilities_of

__all__ = ["AsyncView", "async_view", "open_async"]


class AsyncView(AsyncViewCore):
    """A sync store seen from async code: the same verbs, pairs and errors, awaited.

    Every operation runs on a thread pool that belongs to the view and holds at most
    ``threads`` threads, so backend calls never block the event loop and one store
    never runs more than ``threads`` calls at once. The view is bound to no event loop:
    use it from several ``asyncio.run()`` calls, or from loops in several threads.
    Services with a native async implementation (azblob, gcs) do not use this view
    unless asked (``async_view(store, native=False)``). The memory service's calls
    cannot block, so its view runs them inline on the loop's thread.

    The view is an instance of the async twin of each capability protocol the store
    has (``isinstance(view, AsyncCopier)`` exactly when ``isinstance(store, Copier)``).
    Build one with :func:`async_view` or ``store.aio``, not by calling the class.

    A cancelled ``await`` stops waiting at once, but the call already running in its
    thread finishes (a write of async data stops at its next chunk and is abandoned).
    """

    def metadata(self) -> StorageMeta:
        """Return the sync store's metadata (no I/O)."""
        return self._sync.metadata()

    @property
    def sync(self) -> Storager:
        """The sync store this view runs."""
        return self._sync

    def release(self) -> None:
        """Stop the view's threads without waiting (the sync store is closing itself).

        A call through the view afterwards is refused (``_executor``), rather than
        starting a pool nobody would stop.
        """
        self._closed = True
        pool = self._shutdown_pool()
        if pool is not None:
            pool.shutdown(wait=False)

    async def close(self) -> None:
        """Close the sync store (on the pool) and stop the view's threads."""
        if self._closed:
            return
        try:
            await self._run(self._sync.close)  # which may release this view (its own)
        finally:
            self._closed = True
            pool = self._shutdown_pool()
            if pool is not None:
                # Waiting for threads to end is itself blocking: do it off the loop.
                await off_loop(lambda: pool.shutdown(wait=True))

    async def __aenter__(self) -> AsyncView:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncView of {self._sync!r}>"


_classes: dict[frozenset[type], type[AsyncView]] = {}
_classes_lock = threading.Lock()


def _view_class(capabilities: frozenset[type]) -> type[AsyncView]:
    cls = _classes.get(capabilities)
    if cls is not None:
        return cls
    with _classes_lock:
        cls = _classes.get(capabilities)
        if cls is None:
            ordered = [cap for cap in VIEW_MIXINS if cap in capabilities]
            mixins = tuple(VIEW_MIXINS[cap] for cap in ordered)
            name = "AsyncView" + (f"[{','.join(c.__name__ for c in ordered)}]" if ordered else "")
            namespace = {"__module__": __name__, "__qualname__": name, "__doc__": AsyncView.__doc__}
            cls = type(name, (*mixins, AsyncView), namespace)
            _classes[capabilities] = cls
    return cls


def async_view(
    store: Storager,
    *,
    threads: int = DEFAULT_THREADS,
    inline: bool | None = None,
    native: bool = True,
) -> AsyncStorager:
    """Return a new async twin of ``store``: its native async store, or a threaded view.

    A service whose backend is async (azblob, gcs) gives its own async implementation
    through ``_native_async`` (see ``storager.aio._native`` and docs/async.md), which
    runs on the caller's event loop without a thread hop; ``native=False`` asks for
    the threaded view anyway. Any other store gets a view with its own pool of at
    most ``threads`` threads.

    A service's ``store.aio`` returns one twin per store; call this for a combinator
    or to choose the pool's size, and keep the view rather than making one per call.

    ``inline`` runs the calls on the event loop's thread, without a thread hop, for a
    store whose calls cannot block; by default only the memory service itself (not a
    combinator over it) is run inline, except data from a sync file or iterable.

    Raises:
        InvalidArgumentError: ``store`` is not a Storager, or ``threads`` is not >= 1.
    """
    if native:
        make_native = getattr(store, "_native_async", None)
        twin = make_native() if make_native is not None else None
        if twin is not None:
            return cast(AsyncStorager, twin)
    if inline is None:
        inline = isinstance(store, Service) and store.service_name == "memory"
    return _view_class(capabilities_of(store))(store, threads=threads, inline=inline)


def open_async(url: str, **pairs: Any) -> AsyncStorager:
    """Open a store from a connection string and return its async view.

    Opening (parsing, credentials, the client) runs where it is called; the operations
    then run on the view's pool. Example::

        store = storager.open_async("memory://")
        await store.write("a.txt", b"hi")
    """
    from storager._registry import open as open_sync

    return async_view(open_sync(url, **pairs))
