"""Closing a combinator while calls wait in its pool leaves no caller stranded.

``Future.cancel`` on a queued task does not wake a ``concurrent.futures.wait`` already
waiting for it, and makes ``result()`` raise a bare ``CancelledError``: a pool that
cancels its queue on close either hangs a caller (and the interpreter at exit) or
hands it a non-storager error. The pools let queued work finish instead.
"""

from __future__ import annotations

import threading
import time

from storager.combinators import Timeout
from storager.services.memory import MemoryStorage
from storager.testing import FaultyStorager


def test_a_call_queued_behind_a_busy_timeout_pool_still_answers_after_close() -> None:
    inner = MemoryStorage()
    inner.write("a", b"A")
    store = Timeout(FaultyStorager(inner, latency=0.3), 5.0, workers=1)
    answers: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            answers[name] = store.read("a")
        except BaseException as exc:  # the test reports whatever came out
            answers[name] = exc

    first = threading.Thread(target=call, args=("first",), daemon=True)
    second = threading.Thread(target=call, args=("second",), daemon=True)
    first.start()
    time.sleep(0.05)
    second.start()  # queued: the pool's one thread is busy with the first
    time.sleep(0.05)
    store.close()
    first.join(5)
    second.join(5)
    assert answers == {"first": b"A", "second": b"A"}
    inner.close()
