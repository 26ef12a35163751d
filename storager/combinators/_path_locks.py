"""Per-path locks: one change at a time per path, with a table that holds only live entries.

A Mirror rolls back a failed change by putting back what each target held before it.
Two changes of the same path running at once would make that snapshot stale: the
rollback of one would undo the other's acknowledged write. Serialising the changes
of each path inside the Mirror closes that; changes to different paths still run
concurrently.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

__all__ = ["PathLocks"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class PathLocks:
    """A lock per path, created on first use and removed when nobody holds or awaits it.

    The table never holds more entries than there are calls in flight, however
    many paths the store has seen.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        with self._guard:
            return len(self._entries)

    @contextlib.contextmanager
    def hold(self, paths: Iterable[str]) -> Iterator[None]:
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
                    entry.lock.acquire()
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
