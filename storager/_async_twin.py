"""``store.aio``: the async view every sync store built here carries, one per store.

Services and combinators both inherit :class:`HasAsyncView`, so ``store.aio`` works
on any store the library builds (a Striped, a Retry, an fs store). The view itself is
made by ``storager.aio.async_view`` on first use: the native async store where the
service has one, else a threaded view with its own pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from storager._async_protocols import AsyncStorager
    from storager._protocols import Storager

__all__ = ["HasAsyncView"]


class HasAsyncView:
    """Give a sync store its ``aio`` property."""

    @property
    def aio(self) -> AsyncStorager:
        """The async view of this store, one per store (see ``storager.aio.async_view``)."""
        view = self.__dict__.get("_aio_view")
        if view is None:
            # Imported here: storager.aio builds on the sync core that imports this module.
            from storager.aio import async_view

            view = self.__dict__.setdefault("_aio_view", async_view(cast("Storager", self)))
        return cast("AsyncStorager", view)
