"""One fragment read and checked: into new bytes, or into the caller's buffer.

Every fragment is checked against its length and digest from the manifest before
anything uses it; what was wrong is said in the words ``heal`` records.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from storager._errors import NotFoundError
from storager.combinators.striped._core import Core, Revoked
from storager.combinators.striped._digests import checker, matches
from storager.combinators.striped._health import describe_error
from storager.combinators.striped._manifest import Fragment

__all__ = [
    "BadFragment",
    "Lease",
    "Revoked",
    "fetch_fragment",
    "fetch_fragment_into",
    "problem",
]

#: Hold = what a pool thread enters around each use of the caller's buffer.
Hold = Callable[[], AbstractContextManager[None]]


class BadFragment(Exception):
    """A fragment that arrived but is not what the manifest recorded."""


def fetch_fragment(core: Core, fragment: Fragment) -> bytes:
    """Return one fragment's bytes, checked.

    Raises:
        BadFragment: Its length or digest is not the manifest's.
        StorageError: The backend's own error.
    """
    data = core.get(fragment.backend, fragment.key)
    if len(data) != fragment.length:
        raise BadFragment(f"length {len(data)}, manifest says {fragment.length}")
    if not matches(fragment.digest, data):
        raise BadFragment("digest mismatch")
    return data


def fetch_fragment_into(
    core: Core, fragment: Fragment, view: memoryview, hold: Hold | None = None
) -> None:
    """Read one fragment into ``view`` (exactly its length) and check it there.

    ``hold``, for a pool thread writing into the caller's buffer: entered around
    each use of ``view`` (see :class:`Lease`).

    Raises:
        BadFragment: Its length or digest is not the manifest's (``view`` then holds
            whatever arrived: the caller must not use it).
        Revoked: The caller took its buffer back (``hold``).
        StorageError: The backend's own error.
    """
    if hold is not None:
        with hold():  # given up before it started: ask the backend nothing
            pass
    check = checker(fragment.digest)
    on_piece = check.update if check is not None else None
    n = core.get_into(fragment.backend, fragment.key, view, hold, on_piece)
    if n != fragment.length:
        more = "more than" if n > fragment.length else str(n)
        raise BadFragment(f"length {more}, manifest says {fragment.length}")
    # Each piece was digested as it landed (``Checker``), while still in the cache.
    if check is None or not check.matches():
        raise BadFragment("digest mismatch")


def problem(index: int, fragment: Fragment, exc: BaseException) -> str:
    """Say what went wrong with fragment ``index``, for errors and ``heal``."""
    what = str(exc) if isinstance(exc, BadFragment) else describe_error(exc)
    if isinstance(exc, NotFoundError):
        what = "chunk missing"
    return f"fragment {index} on {fragment.backend}: {what}"


class Lease:
    """The caller's buffer lent to pool threads until the caller takes it back.

    Pool threads wrap each use of the buffer in ``hold()``; ``revoke()`` waits for
    the uses in progress (one bounded read or digest each), then refuses any more
    (``Revoked``). Once ``revoke`` returns, nothing of ours writes or reads the
    buffer, so the caller may return it, hand it on or see it freed; a slow backend
    is left to finish its read into nothing.

    Every read into a caller's buffer makes one and holds it once per piece, so it is
    kept cheap: a plain lock and a count, the lease its own context manager, and an
    event made only when ``revoke`` has uses to wait out. A lease with a
    ``Condition`` and a generator-based ``hold`` cost 8.5 us per 4 MiB read in 1 MiB
    pieces against 2.7 (timed alone; ``benchmarks/README.md``, "Session 13" under
    Striped).
    """

    __slots__ = ("_drained", "_mutex", "_revoked", "_users")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._users = 0
        self._revoked = False
        #: Made by ``revoke`` when uses are in progress; set when the last one ends.
        self._drained: threading.Event | None = None

    def hold(self) -> Lease:
        """Return the context manager one use of the buffer runs in (the lease itself).

        Raises:
            Revoked: On entering, once the buffer was taken back.
        """
        return self

    def __enter__(self) -> None:
        with self._mutex:
            if self._revoked:
                raise Revoked
            self._users += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._mutex:
            self._users -= 1
            if not self._users and self._drained is not None:
                self._drained.set()

    def revoke(self) -> None:
        """Take the buffer back: wait out the uses in progress, refuse the rest.

        A KeyboardInterrupt meanwhile is raised once no thread uses the buffer.
        """
        with self._mutex:
            self._revoked = True
            if not self._users:
                return
            if self._drained is None:
                self._drained = threading.Event()
            drained = self._drained
        interrupted: BaseException | None = None
        while not drained.is_set():
            try:
                drained.wait()
            except BaseException as exc:  # re-raised below, once no thread uses the buffer
                interrupted = exc
        if interrupted is not None:
            raise interrupted
