"""Helpers shared by the conformance suite's test modules: sizes, the factory type, counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from storager._object import Object
from storager._protocols import Storager

__all__ = ["Factory", "MiB", "_files", "_paths"]

MiB = 1 << 20

#: ``(work_dir, **init_pairs) -> Storager``, what the ``storager_factory`` fixture returns.
Factory = Callable[..., Storager]


def _paths(objects: Iterator[Object]) -> Counter[str]:
    return Counter(obj.path for obj in objects)


def _files(objects: Iterator[Object]) -> Counter[str]:
    """Count the listed paths that are not directories (prefix mode may show markers)."""
    return Counter(obj.path for obj in objects if not obj.is_dir)
