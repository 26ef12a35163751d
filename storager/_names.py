"""File and directory names that exclude each other, on stores whose keys allow both.

On fs a name is a file or a directory, never both: ``write("d")`` fails while ``d/x``
exists, and so do ``write("f/x")`` under a file ``f`` and ``create_dir("x/")`` over a
file ``x``. An object store keeps flat keys, so ``d`` and ``d/x`` can live side by side.
A store opened with ``exclusive_names=true`` refuses such a name as fs does, before
anything is written, at the cost of requests the operation would not make otherwise:

- one listing of at most one key under ``path/`` (is the name a directory?), and
- one existence check per ancestor (``a`` and ``a/b`` for ``a/b/c``: is a parent a file?).

The check cannot be atomic on an object store: two writers racing for ``d`` and
``d/x`` can both pass it. It is done once, here, for every service that takes the
pair; the generated code calls :func:`claim_name` before each operation of
:data:`NAME_CLAIMS`, and the service answers two questions, in :class:`NameProbe`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from storager._errors import AlreadyExistsError, ObjectModeInvalidError

__all__ = ["NAME_CLAIMS", "NAME_PAIR", "NameProbe", "claim_name"]

#: The init pair that turns the check on.
NAME_PAIR = "exclusive_names"

#: The operations that give a name to an object or a directory, each with the parameter
#: that names it (a ``multipart`` parameter names it by its ``path``).
NAME_CLAIMS: Mapping[str, str] = MappingProxyType(
    {
        "write": "path",
        "append": "path",
        "copy": "dst",
        "move": "dst",
        "complete_multipart": "multipart",
        "create_dir": "path",
        "create_link": "path",
    }
)


class NameProbe(Protocol):
    """What a service answers so that :func:`claim_name` can check a name."""

    def _probe_object(self, op: str, path: str) -> bool:
        """Return whether an object (not a directory marker) has the store-absolute path."""
        ...

    def _probe_children(self, op: str, prefix: str) -> bool:
        """Return whether any key (a directory marker included) starts with ``prefix``."""
        ...


def claim_name(store: NameProbe, service: str, op: str, path: str) -> None:
    """Raise unless ``path`` may become an object (or, ending in ``/``, a directory).

    Args:
        store: The service, which answers the two questions of :class:`NameProbe`.
        service: The service's name, for the error.
        op: The operation, for the error.
        path: The store-absolute path the operation is about to create.

    Raises:
        ObjectModeInvalidError: An object path that is a directory (keys exist under
            ``path/``), or a path under an object (a parent is a file).
        AlreadyExistsError: A directory path whose name is an object's.
    """
    # create_dir takes "d" and "d/" alike: both name the directory d/.
    is_dir = op == "create_dir" or path.endswith("/")
    name = path.rstrip("/")
    if is_dir:
        if store._probe_object(op, name):
            raise AlreadyExistsError(op, service, path, "an object has this name")
    elif store._probe_children(op, name + "/"):
        raise ObjectModeInvalidError(op, service, path, "a directory has this name")
    parent = name.rpartition("/")[0]
    ancestors: list[str] = []
    while parent:
        ancestors.append(parent)
        parent = parent.rpartition("/")[0]
    for ancestor in reversed(ancestors):
        if store._probe_object(op, ancestor):
            raise ObjectModeInvalidError(op, service, path, "a parent is not a directory")
