"""One fragment read and checked: into new bytes, or into the caller's buffer.

Every fragment is checked against its length and digest from the manifest before
anything uses it; what was wrong is said in the words ``heal`` records.
"""

from __future__ import annotations

from storager._errors import NotFoundError
from storager.combinators.striped._core import Core
from storager.combinators.striped._digests import matches
from storager.combinators.striped._health import describe_error
from storager.combinators.striped._manifest import Fragment

__all__ = ["BadFragment", "fetch_fragment", "fetch_fragment_into", "problem"]


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


def fetch_fragment_into(core: Core, fragment: Fragment, view: memoryview) -> None:
    """Read one fragment into ``view`` (exactly its length) and check it there.

    Raises:
        BadFragment: Its length or digest is not the manifest's (``view`` then holds
            whatever arrived: the caller must not use it).
        StorageError: The backend's own error.
    """
    n = core.get_into(fragment.backend, fragment.key, view)
    if n != fragment.length:
        more = "more than" if n > fragment.length else str(n)
        raise BadFragment(f"length {more}, manifest says {fragment.length}")
    if not matches(fragment.digest, view):
        raise BadFragment("digest mismatch")


def problem(index: int, fragment: Fragment, exc: BaseException) -> str:
    """Say what went wrong with fragment ``index``, for errors and ``heal``."""
    what = str(exc) if isinstance(exc, BadFragment) else describe_error(exc)
    if isinstance(exc, NotFoundError):
        what = "chunk missing"
    return f"fragment {index} on {fragment.backend}: {what}"
