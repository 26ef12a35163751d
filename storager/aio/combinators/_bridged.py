"""Bridges: a sync combinator run over the children's sync twins, seen from async code.

``async_mirror`` and ``async_striped`` give Mirror and Striped to async code with the
*same code*, hence the same semantics: the sync combinator is built over each child's
sync twin (``child.sync``: every ``store.aio`` and every native async store has one)
and seen through an async view, whose thread pool runs it. What that costs: a thread
hop per call, native children used through their sync side, and cancellation as the
threaded view has it (put an ``AsyncTimeout`` above for a deadline that holds: its
data stream refuses the rest after the deadline). Mirror also has a native twin,
:class:`~storager.aio.combinators.AsyncMirror`; Striped has only this bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from storager._async_protocols import AsyncStorager
from storager._errors import InvalidArgumentError
from storager._protocols import Storager
from storager.aio._bridge import DEFAULT_THREADS
from storager.aio._view import AsyncView, async_view
from storager.combinators._mirror import Mirror
from storager.combinators.striped import Striped

__all__ = ["async_mirror", "async_striped", "sync_twin"]


def sync_twin(store: AsyncStorager, role: str) -> Storager:
    """Return the sync store behind ``store`` (its ``sync``), or raise naming ``role``.

    Raises:
        InvalidArgumentError: ``store`` has no sync twin (an async combinator, or a
            third-party async store).
    """
    sync = getattr(store, "sync", None)
    if isinstance(sync, Storager):
        return sync
    raise InvalidArgumentError(
        "new",
        role,
        "",
        f"{role} runs over the children's sync twins; {type(store).__name__} has none "
        "(give store.aio or a native async store, and wrap the result instead)",
    )


def async_mirror(
    targets: Mapping[str, AsyncStorager], *, threads: int = DEFAULT_THREADS, **options: Any
) -> AsyncStorager:
    """Return an async :class:`~storager.combinators.Mirror` of ``targets``.

    ``options`` are Mirror's (``write=``, ``read=``, ``rollback=``...); see the module
    docstring for how it runs.
    """
    if not isinstance(targets, Mapping):
        raise InvalidArgumentError("new", "mirror", "", "targets must be a mapping")
    mirror = Mirror({name: sync_twin(t, "mirror") for name, t in targets.items()}, **options)
    return async_view(mirror, threads=threads)


def async_striped(
    backends: Mapping[str, AsyncStorager],
    *,
    manifests: AsyncStorager | Storager,
    threads: int = DEFAULT_THREADS,
    **options: Any,
) -> AsyncView:
    """Return an async :class:`~storager.combinators.Striped` over ``backends``.

    Args:
        backends: The backends by name, as async stores with a sync twin
            (``store.aio``, a native async store).
        manifests: The manifest store, sync or async (then its sync twin is used).
        threads: The view's pool: at most this many Striped calls run at once.
        options: Striped's (``codec=`` is required; ``chunk_size=``, ``placement=``...).

    Striped's own methods (``health``, ``mark_down``, ``gc``, ``heal``, ``scrub``) are
    on the sync Striped, ``view.sync``. They may do I/O, so run them off the event
    loop: ``await asyncio.to_thread(view.sync.gc)``.

    Raises:
        InvalidArgumentError: A backend or the manifest store has no sync twin, or
            Striped refuses its arguments.
    """
    if not isinstance(backends, Mapping):
        raise InvalidArgumentError("new", "striped", "", "backends must be a mapping")
    children = {name: sync_twin(b, "striped") for name, b in backends.items()}
    if not isinstance(manifests, Storager):
        manifests = sync_twin(manifests, "striped")
    striped = Striped(children, manifests=manifests, **options)
    view = cast(AsyncView, async_view(striped, threads=threads))
    # The store's own ``aio`` is this view (one view, one pool, closed with the store).
    striped.__dict__["_aio_view"] = view
    return view
