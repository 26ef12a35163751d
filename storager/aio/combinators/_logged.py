"""Logged: a structured log record, and optional callbacks, for every operation.

Written once: ``storager/aio/combinators/_logged.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_logged.py`` from it. The records,
their fields and the callbacks are the ``Reporter``'s
(``storager/combinators/_reporter.py``): the same in both forms, and never pairs, data
or credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from storager._async_protocols import AsyncStorager
from storager.aio.combinators._base import Call, call_child
from storager.aio.combinators._delegate import AsyncDelegate
from storager.combinators._base import served_by
from storager.combinators._reporter import LOGGER, Event, Reporter

__all__ = ["AsyncLogged"]

T = TypeVar("T")


class AsyncLogged(AsyncDelegate):
    """Log every operation of the inner store, and call back on success and failure.

    Args:
        inner: The store to wrap; its capabilities are kept.
        logger: Where records go.
        level: The level of successful operations; failures log at WARNING.
        on_success: Called with an :class:`Event` after each successful operation.
        on_failure: Called with an :class:`Event` after each failed one.

    A callback that raises is logged (with its traceback) and does not change the
    operation's outcome. The async form calls back on the event loop's thread.
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
            result = await call_child(self._inner, op, path, fn)
        except Exception as exc:
            self._report.failed(op, path, start, exc)
            raise
        finally:
            who = served_by.get()
            served_by.reset(token)
        self._report.succeeded(op, path, start, result, who)
        return result
