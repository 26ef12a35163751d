"""Store trees from TOML: ``storager.load("tree.toml")`` builds combinators and services.

A file names one or more trees; each node names its kind, its pairs and its children,
with the constructor's own parameter names::

    default = "photos"

    [trees.photos]
    kind = "mirror"
    write = "parallel"
    targets.local = "fs:///srv/photos"
    targets.cloud = { kind = "retry", inner = "s3://photos/?credential=${S3_CREDENTIAL}" }

Leaves are connection strings or service tables (``{kind = "s3", name = "photos", ...}``);
``{tree = "name"}`` uses another tree of the file. ``${NAME}`` takes a value from the
environment and nothing else. See docs/trees.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from storager._protocols import Storager
from storager.tree._file import MAX_DEPTH, MAX_FILE_BYTES, Source, TreeFile
from storager.tree._kinds import NodeKind, Pair, Shape, Slot, kind_names, node_kind, register_kind
from storager.tree._values import (
    Converter,
    Where,
    boolean,
    integer,
    log_level,
    number,
    optional,
    record,
    size,
    string,
    table_of,
    tagged,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Converter",
    "NodeKind",
    "Pair",
    "Shape",
    "Slot",
    "Source",
    "TreeFile",
    "Where",
    "boolean",
    "integer",
    "kind_names",
    "load",
    "log_level",
    "node_kind",
    "number",
    "optional",
    "record",
    "register_kind",
    "size",
    "string",
    "table_of",
    "tagged",
]


def load(
    source: Source, tree: str | None = None, *, env: Mapping[str, str] | None = None
) -> Storager:
    """Build one store tree from a TOML file.

    Args:
        source: A path, or a file opened for reading.
        tree: The tree to build; default: the file's ``default = "..."``, or its only tree.
        env: Where ``${NAME}`` looks up values (default ``os.environ``). Pass a smaller
            mapping to limit which variables the file may read.

    Returns:
        The tree's root store; closing it closes the whole tree.

    Example:
        >>> store = storager.load("tree.toml", "photos")
        >>> print(storager.combinators.describe(store))

    Raises:
        ConnectionStringInvalidError: The file is not a valid tree file, or names an
            unknown kind, key or tree, misses a child, has a cycle, or uses an unset
            variable; the message names the file, the node path and what was wrong.
        PairRequiredError, PairInvalidError: A service or combinator refused a value
            (also naming the node).
        NotFoundError: No such file.
    """
    return TreeFile.read(source, env=env).build(tree)
