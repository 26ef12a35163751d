"""AsyncLogged: Logged's records and callbacks (its ``Reporter``) for an async store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from storager._async_protocols import AsyncStorager
from storager.aio.combinators._base import AsyncDelegate, Call
from storager.combinators._base import served_by
from storager.combinators._logged import LOGGER, Event, Reporter

__all__ = ["AsyncLogged"]

T = TypeVar("T")


class AsyncLogged(AsyncDelegate):
    """Log every operation of an async store, and call back: the twin of ``Logged``.

    Same records, fields, levels and callbacks (called on the event loop's thread).
    """

    combinator = "logged"

    def __init__(
        self,
        inner: AsyncStorager,
        *,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        on_success: Callable[[Event], None] | None = None,
        on_failure: Callable[[Event], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self._report = Reporter(logger or LOGGER, level, on_success, on_failure)

    async def _around(self, op: str, path: str, fn: Call[T]) -> T:
        token = served_by.set("")
        start = time.perf_counter()
        try:
            result = await fn(self._inner)
        except Exception as exc:
            self._report.failed(op, path, start, exc)
            raise
        finally:
            who = served_by.get()
            served_by.reset(token)
        self._report.succeeded(op, path, start, result, who)
        return result
