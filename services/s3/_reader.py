"""Ranged reads: one GET per range, and the seekable reader built on them."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO

from storager._errors import StorageError
from storager._streams import RangeReader

__all__ = ["READ_BUFFER", "open_ranged"]

#: The reader's buffer: each refill is one ranged GET of this many bytes.
READ_BUFFER = 8 << 20


def open_ranged(
    fetch: Callable[[int, int], bytes],
    start: int,
    length: int,
    map_error: Callable[[Exception], StorageError],
) -> BinaryIO:
    """Return a buffered, seekable reader over ``length`` bytes from ``start``.

    Args:
        fetch: ``fetch(offset, size)`` returns that range of the object (one GET).
        start: Where the reader's byte 0 is in the object.
        length: How many bytes the reader spans.
        map_error: Turns a vendor error raised by ``fetch`` into a storager error,
            so no vendor exception escapes a ``read()`` on the reader.
    """

    def window(offset: int, size: int) -> bytes:
        try:
            return fetch(start + offset, size)
        except StorageError:
            raise
        except Exception as exc:
            raise map_error(exc) from exc

    raw = RangeReader(window, length)
    return io.BufferedReader(raw, buffer_size=READ_BUFFER)
