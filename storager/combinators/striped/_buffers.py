"""Buffers one write reuses from stripe to stripe, instead of fresh memory for each.

A fresh multi-MiB buffer costs more than filling it: glibc maps it anew and the
kernel zeroes and faults in every page on first touch, then unmaps it when it is
freed (``benchmarks/README.md``: a write spent most of its CPU there). One write
cuts every stripe into a buffer taken from here and codes its parity into others,
and gives them back once every fragment of the stripe is stored; the next stripe
takes them again. The pool belongs to one call and goes with it: nothing is kept
between writes. A buffer is given back only once nothing reads it any more.
"""

from __future__ import annotations

import threading

__all__ = ["BufferPool"]


class BufferPool:
    """Bytearrays by size, handed out and given back (thread-safe)."""

    def __init__(self) -> None:
        self._free: dict[int, list[bytearray]] = {}
        self._lock = threading.Lock()
        #: Buffers allocated (not reused), for tests and benchmarks.
        self.allocated = 0

    def take(self, size: int) -> bytearray:
        """Return a buffer of ``size`` bytes; its content is whatever was there."""
        with self._lock:
            free = self._free.get(size)
            if free:
                return free.pop()
            self.allocated += 1
        return bytearray(size)

    def give(self, buffers: list[bytearray]) -> None:
        """Take back buffers nothing reads any more."""
        with self._lock:
            for buffer in buffers:
                self._free.setdefault(len(buffer), []).append(buffer)
