"""Placement: which backends receive the fragments of a stripe, within their quotas.

The fragments of one stripe always land on distinct backends. Among the backends
that are up and have room under their quota, the policy orders the candidates:

- ``most_free``: the most room left under the quota first (a backend without a
  quota has unlimited room; ties go to the least used),
- ``least_used``: the fewest bytes of chunks first,
- ``round_robin``: the next backend after the previous stripe's first,
- ``random``: a random order.

Bytes are counted per backend: counted once by listing each backend's chunk area
(on first need: a quota or a usage-based policy), then kept up to date by this
store's writes and deletes. Other processes writing to the same backends are seen
at the next :meth:`Placement.recount`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping

__all__ = ["POLICIES", "Placement"]

POLICIES = ("most_free", "least_used", "round_robin", "random")


class Placement:
    """Choose distinct backends for fragments; track bytes used per backend.

    Args:
        names: The backends, in order.
        policy: One of :data:`POLICIES`.
        quotas: Bytes allowed per backend (absent: no quota).
        is_up: Whether a backend is up (the health tracker).
        count_usage: Return the bytes of chunks on a backend (lists it).
        rng: Randomness for ``random`` (injectable for tests).
    """

    def __init__(
        self,
        names: Iterable[str],
        policy: str,
        quotas: Mapping[str, int],
        is_up: Callable[[str], bool],
        count_usage: Callable[[str], int],
        rng: random.Random | None = None,
    ) -> None:
        self.names = list(names)
        self.policy = policy
        self.quotas = dict(quotas)
        self._is_up = is_up
        self._count_usage = count_usage
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._used: dict[str, int] | None = None
        self._next = 0

    @property
    def needs_usage(self) -> bool:
        """Whether placement depends on bytes used (quotas, most_free, least_used)."""
        return bool(self.quotas) or self.policy in ("most_free", "least_used")

    def usage(self) -> dict[str, int] | None:
        """Return bytes used per backend, or None when not counted yet."""
        with self._lock:
            return None if self._used is None else dict(self._used)

    def recount(self) -> dict[str, int]:
        """Count the bytes on every backend again (a backend that fails counts as 0)."""
        used: dict[str, int] = {}
        for name in self.names:
            try:
                used[name] = self._count_usage(name)
            except Exception:
                used[name] = 0
        with self._lock:
            self._used = used
        return dict(used)

    def _ensure_counted(self) -> None:
        if self._used is None and self.needs_usage:
            self.recount()

    def add(self, name: str, nbytes: int) -> None:
        """Count ``nbytes`` more (negative: fewer) on ``name``."""
        with self._lock:
            if self._used is not None:
                self._used[name] = max(0, self._used.get(name, 0) + nbytes)

    def choose(self, count: int, nbytes: int, exclude: Iterable[str] = ()) -> list[str]:
        """Return up to ``count`` distinct backends with room for ``nbytes`` each.

        The bytes are reserved on each chosen backend (give them back with
        ``add(name, -nbytes)`` if the write fails). Fewer than ``count`` come back
        when fewer backends are up and have room.
        """
        self._ensure_counted()
        excluded = set(exclude)
        up = [n for n in self.names if n not in excluded and self._is_up(n)]
        with self._lock:
            used = self._used or {}
            room = [n for n in up if self._fits(n, nbytes, used)]
            ordered = self._order(room, used)
            chosen = ordered[:count]
            if self._used is not None:
                for name in chosen:
                    self._used[name] = self._used.get(name, 0) + nbytes
        return chosen

    def _fits(self, name: str, nbytes: int, used: Mapping[str, int]) -> bool:
        quota = self.quotas.get(name)
        return quota is None or used.get(name, 0) + nbytes <= quota

    def _order(self, names: list[str], used: Mapping[str, int]) -> list[str]:
        if self.policy == "random":
            shuffled = list(names)
            self._rng.shuffle(shuffled)
            return shuffled
        if self.policy == "round_robin":
            start = self._next % len(self.names) if self.names else 0
            self._next += 1
            rank = {n: (self.names.index(n) - start) % len(self.names) for n in names}
            return sorted(names, key=rank.__getitem__)
        if self.policy == "least_used":
            return sorted(names, key=lambda n: used.get(n, 0))

        def free(name: str) -> float:
            quota = self.quotas.get(name)
            return float("inf") if quota is None else quota - used.get(name, 0)

        return sorted(names, key=lambda n: (-free(n), used.get(n, 0)))
