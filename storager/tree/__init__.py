"""Store trees from TOML: ``storager.load("tree.toml")`` builds combinators and services.

See docs/trees.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO

from storager._protocols import Storager

__all__ = ["load"]


def load(
    source: str | os.PathLike[str] | BinaryIO,
    tree: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Storager:
    """Build the store tree named ``tree`` (or the file's default) from a TOML file."""
    raise NotImplementedError("storager.load is being written")
