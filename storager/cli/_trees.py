"""``--config tree.toml``: an argument ``NAME:path`` names an object in the tree ``NAME``.

``storager ls --config tree.toml photos:2024/`` lists ``2024/`` in the tree ``photos`` of
``tree.toml`` (see :mod:`storager.tree`). The path after the colon is relative to the
tree, exactly as ``tree.list("2024/")`` takes it in Python; ``photos:`` is its top.
Arguments with ``://`` stay connection strings; a local path that looks like
``NAME:...`` is written ``./NAME:...``.
"""

from __future__ import annotations

import re

from storager._errors import ConnectionStringInvalidError
from storager._object import StorageMeta
from storager.combinators import Delegate
from storager.tree import TreeFile

__all__ = ["TreeView", "tree_location"]

_TREE_ARG = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*):(?!//)(.*)", re.DOTALL)


def tree_location(arg: str, trees: TreeFile) -> tuple[str, str] | None:
    """Return ``(tree, store-absolute path)`` when ``arg`` is ``NAME:path``, else None.

    Raises:
        ConnectionStringInvalidError: ``NAME`` is no tree of the file.
    """
    match = _TREE_ARG.fullmatch(arg)
    if match is None:
        return None
    name, rest = match.groups()
    if name not in trees.names:
        raise ConnectionStringInvalidError(
            "open",
            "",
            arg,
            f"no tree named {name!r} in {trees.file} (trees: {', '.join(trees.names)}); "
            "write ./" + arg + " for a local path",
        )
    return name, "/" + rest.lstrip("/")


class TreeView(Delegate):
    """A tree as the commands see a store: the path ``/a/b`` is the tree's ``a/b``.

    The commands address objects by store-absolute paths in stores opened at ``/``;
    a tree's paths are relative to the tree (a Mirror passes ``a/b`` to each target,
    each under its own work_dir), so the view drops the leading ``/``.
    """

    combinator = "tree"

    def _path(self, op: str, path: str) -> str:
        return path[1:] if path.startswith("/") else path

    def metadata(self) -> StorageMeta:
        return self._inner.metadata()

    def describe_label(self) -> str:
        return "tree"
