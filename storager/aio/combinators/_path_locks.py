"""Per-path locks for coroutines: one change at a time per path, across loops and threads.

The async twin of ``storager.combinators._path_locks.PathLocks`` (same table, same
sorted order, same rule that an entry lives only while someone holds or awaits it).
Each lock is a thread lock taken without blocking: a coroutine that finds it held
sleeps a little and tries again, so a store shared by several event loops (one per
thread, or ``asyncio.run`` after ``asyncio.run``) serialises its changes all the same,
which a lock bound to one loop could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable

__all__ = ["AsyncPathLocks"]

_POLL_MIN = 0.0005
_POLL_MAX = 0.01


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class AsyncPathLocks:
    """A lock per path, created on first use and removed when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        with self._guard:
            return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, paths: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``paths`` (in sorted order, so two callers never deadlock)."""
        held: list[tuple[str, _Entry]] = []
        try:
            for path in sorted(set(paths)):
                with self._guard:
                    entry = self._entries.get(path)
                    if entry is None:
                        entry = self._entries[path] = _Entry()
                    entry.users += 1
                try:
                    delay = _POLL_MIN
                    while not entry.lock.acquire(blocking=False):
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, _POLL_MAX)
                except BaseException:
                    self._leave(path, entry)
                    raise
                held.append((path, entry))
            yield
        finally:
            for path, entry in reversed(held):
                entry.lock.release()
                self._leave(path, entry)

    def _leave(self, path: str, entry: _Entry) -> None:
        with self._guard:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[path]
