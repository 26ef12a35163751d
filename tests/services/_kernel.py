"""What this kernel offers the fs tests, probed once."""

from __future__ import annotations

import os
from collections.abc import Callable

from storager.services.fs import _openat2


def kernel_openat2() -> Callable[[int, bytes, int, int], int] | None:
    """Return a fresh caller of ``openat2`` if this kernel answers it, else None.

    Fresh: an earlier test may have switched the module's own off.
    """
    call = _openat2._load()
    if call is None:
        return None
    dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = call(dir_fd, b".", os.O_RDONLY | os.O_DIRECTORY, 0)
    finally:
        os.close(dir_fd)
    if fd < 0:
        return None
    os.close(fd)
    return call


KERNEL_OPENAT2 = kernel_openat2()
