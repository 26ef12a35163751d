"""One ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` call for an open's common case.

:class:`~._beneath.Beneath` walks a path one ``openat`` per directory, closing each
descriptor behind it: seven system calls for ``a/b/c/name``, each one letting go of the
GIL and taking it back, so a thread reading beside another (Striped's fragment reads)
pays for every one. Linux 5.6's ``openat2`` resolves the whole path in the kernel, and
with ``RESOLVE_BENEATH`` it refuses (``EXDEV``) anything that would leave the
directory, ``..`` and absolute links included, even while directories are renamed
(``EAGAIN``). ``RESOLVE_NO_SYMLINKS`` makes every symbolic link on the way an error
(``ELOOP``), so whatever the kernel opens is exactly what the walk would have opened
without meeting a link. One difference in outcome, by design: the walk opens each
directory for reading, so it refuses a directory one may search but not read, where
``openat2`` (like any path lookup) only needs to search it. So where the kernel has
``openat2``, opening ``d/file`` in such a directory succeeds while ``stat``, listing,
and paths through a link into it are still refused (they take the walk).

This module decides nothing: any error at all returns ``None`` and the caller walks as
before, so the walk alone says which error an open gets and how inward links are
followed. It answers ``None`` for good once the kernel (or a seccomp filter) says
``ENOSYS`` or ``EPERM``, and always where ``ctypes`` or ``syscall`` is missing (not
Linux) or the machine numbers the call otherwise.

Used for paths with a directory in them (a top-level name is already one ``openat``).
Measured here (``benchmarks/README.md``, "Session 14" under Striped): a 4 KiB
``read`` three directories deep 10.0 us against 15.3 by the walk, one deep 9.6 against
10.0; Striped's 256 MiB read over 6 fs backends +1%, within noise.
"""

from __future__ import annotations

import errno
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["open_beneath"]

#: ``openat2``'s number (Linux 5.6) on the machines listed: the generic table, x86 and
#: the other tables that took the shared numbering. Alpha, ia64 and MIPS number it
#: otherwise: there the walk alone serves.
_SYS_OPENAT2 = 437
_MACHINES = frozenset(
    {"x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv8l", "riscv64"}
    | {"ppc64", "ppc64le", "s390x", "loongarch64"}
)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
_HOW_SIZE = 24  # struct open_how: flags, mode, resolve (three u64)
_TMPFILE = getattr(os, "O_TMPFILE", 0)


def _load() -> Callable[[int, bytes, int, int], int] | None:
    """Return a caller of ``openat2`` giving a descriptor or ``-errno``; None if none."""
    if not sys.platform.startswith("linux") or platform.machine() not in _MACHINES:
        return None
    try:
        import ctypes
    except ImportError:  # pragma: no cover - a Python built without ctypes
        return None
    try:
        syscall: Any = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):  # pragma: no cover - no libc syscall()
        return None
    syscall.restype = ctypes.c_long
    syscall.argtypes = [
        ctypes.c_long,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    how_type = ctypes.c_uint64 * 3

    def call(dir_fd: int, path: bytes, flags: int, mode: int) -> int:
        how = how_type(flags, mode, _RESOLVE)
        fd = int(syscall(_SYS_OPENAT2, dir_fd, path, ctypes.addressof(how), _HOW_SIZE))
        return fd if fd >= 0 else -ctypes.get_errno()

    return call


_openat2 = _load()


def open_beneath(dir_fd: int, path: str, flags: int, mode: int) -> int | None:
    """Open ``path`` (relative, no link on the way) beneath ``dir_fd``; None otherwise.

    ``flags`` are ``os.open``'s; ``mode`` counts only with ``O_CREAT``. ``None`` means
    "walk": the kernel lacks ``openat2``, the path is not plain (a link, ``..``, a NUL
    byte, an absolute path), or the open failed for any reason, which the walk will
    meet again and report as usual.
    """
    global _openat2
    call = _openat2
    if call is None:
        return None
    if _TMPFILE and flags & _TMPFILE == _TMPFILE:
        return None  # its mode would be dropped below
    encoded = os.fsencode(path)
    if not encoded or b"\0" in encoded or encoded.startswith(b"/"):
        return None  # ctypes would cut the path at a NUL: never let it
    fd = call(dir_fd, encoded, flags, mode if flags & os.O_CREAT else 0)
    if fd >= 0:
        return fd
    if -fd in (errno.ENOSYS, errno.EPERM):
        # No such call, or a seccomp filter refusing it: asking again would only cost.
        # (A legitimate EPERM, a write to an immutable file, turns it off too: the walk
        # serves every open as it did before this module.)
        _openat2 = None
    return None
