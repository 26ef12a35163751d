"""Helpers shared by the conformance suite's test modules: sizes, the factory type, counts."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator

from storager._object import Object
from storager._protocols import Storager

__all__ = ["Factory", "MiB", "_files", "_paths", "random_content"]

MiB = 1 << 20

#: ``(work_dir, **init_pairs) -> Storager``, what the ``storager_factory`` fixture returns.
Factory = Callable[..., Storager]


def _paths(objects: Iterator[Object]) -> Counter[str]:
    return Counter(obj.path for obj in objects)


def _files(objects: Iterator[Object]) -> Counter[str]:
    """Count the listed paths that are not directories (prefix mode may show markers)."""
    return Counter(obj.path for obj in objects if not obj.is_dir)


def random_content(length: int) -> bytes:
    """``length`` random bytes that do not end in a carriage return.

    gcp-storage-emulator drops a final ``\\r`` of an object sent as a multipart upload
    (101 bytes ending in one stat as 100 there), so one write in 256 of random content
    failed on it. Real services keep the byte; no contract depends on the last byte.
    """
    data = bytearray(secrets.token_bytes(length))
    if data and data[-1] == 0x0D:
        data[-1] = 0x0A
    return bytes(data)
