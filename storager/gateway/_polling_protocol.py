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
        #: This connection's requests begun and not answered (pipelined ones included).
        self._unanswered = 0

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not before:  # a request to answer (not an upgrade)
            self._unanswered += 1
            self._busy_poll.began()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._unanswered > 0:
            self._unanswered -= 1
            # A closing connection sends no further request to wait for.
            self._busy_poll.answered(more_may_come=not self.transport.is_closing())

    def handle_websocket_upgrade(self) -> None:
        # The connection goes to another protocol, whose end this one never sees.
        self._busy_poll.forget(self._unanswered)
        self._unanswered = 0
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._busy_poll.forget(self._unanswered)
        self._unanswered = 0
