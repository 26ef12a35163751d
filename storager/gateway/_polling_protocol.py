"""uvicorn's httptools protocol with the loop polling after each answer (``_busy_poll``)."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from storager.gateway._busy_poll import poller_of

__all__ = ["BusyPollingHttpTools"]


class BusyPollingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol; its loop polls a while after each answer.

    uvicorn builds it with its own arguments; give the window with
    ``functools.partial(BusyPollingHttpTools, busy_poll_window=...)`` (a partial of a
    module-level class: ``--workers`` pickles it to its worker processes).
    """

    def __init__(self, *args: Any, busy_poll_window: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy_poll = poller_of(self.loop, busy_poll_window)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A closing connection sends no further request to wait for.
        if not self.transport.is_closing():
            self._busy_poll.extend()
