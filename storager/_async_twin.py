"""``store.aio``: the async view every sync store built here carries, one per store.

Services and combinators both inherit :class:`HasAsyncView`, so ``store.aio`` works
on any store the library builds (a Striped, a Retry, an fs store). The view itself is
made by ``storager.aio.async_view`` on first use: the native async store where the
service has one, else a threaded view with its own pool.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from storager._async_protocols import AsyncStorager
    from storager._protocols import Storager

__all__ = ["HasAsyncView"]

#: Making a view is rare (once per store): one lock for all, reentrant since a view of a
#: combinator may ask its children for theirs.
_MAKING = threading.RLock()


class HasAsyncView:
    """Give a sync store its ``aio`` property."""

    @property
    def aio(self) -> AsyncStorager:
        """The async view of this store, one per store (see ``storager.aio.async_view``)."""
        view = self.__dict__.get("_aio_view")
        if view is None:
            # Imported here: storager.aio builds on the sync core that imports this module.
            from storager.aio import async_view

            with _MAKING:  # two threads asking at once build one view (a native twin
                # holds clients: a second one would be dropped unclosed)
                view = self.__dict__.get("_aio_view")
                if view is None:
                    view = self.__dict__["_aio_view"] = async_view(cast("Storager", self))
        return cast("AsyncStorager", view)

    def _drop_async_view(self) -> None:
        """Let go of the view when the sync store closes (its pool, and the cycle).

        The store and its view refer to each other; without this a closed store, its
        view's threads and its descriptors would wait for the cyclic garbage collector.
        """
        view = self.__dict__.pop("_aio_view", None)
        release = getattr(view, "release", None)
        if release is not None:
            release()
