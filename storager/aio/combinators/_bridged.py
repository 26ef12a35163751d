"""Async Mirror: the sync Mirror, run over the children's sync twins.

Its async twin is not written yet. Until it is, ``async_mirror`` gives Mirror to async
code with the *same code*, hence the same semantics: the sync Mirror is built over each
child's sync twin (``child.sync``: every ``store.aio`` and every native async store has
one) and seen through an async view, whose thread pool
runs it. What that costs: a thread hop per call, native children used through their
sync side, and cancellation as the threaded view has it (put an ``AsyncTimeout`` above
for a deadline that holds: its data stream refuses the rest after the deadline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storager._async_protocols import AsyncStorager
from storager._errors import InvalidArgumentError
from storager._protocols import Storager
from storager.aio._bridge import DEFAULT_THREADS
from storager.aio._view import async_view
from storager.combinators._mirror import Mirror

__all__ = ["async_mirror", "sync_twin"]


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
