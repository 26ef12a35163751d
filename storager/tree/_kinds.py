"""The registry of node kinds: how each combinator's children and arguments map from TOML.

A node of kind ``mirror`` is built by calling ``Mirror`` with the node's keys: each key
is one of the constructor's parameters, by the same name. A :class:`NodeKind` says
which keys hold child nodes (:class:`Slot`: one node, an array or a table of them),
which hold values (:class:`Pair`, each with its converter), which of them are passed
positionally, and which parameters only code can give (callables: a file never names
code to run). Loading is the same walk for every kind; adding a combinator is adding
a :class:`NodeKind`, here or through :func:`register_kind`.
"""

from __future__ import annotations

import enum
import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from storager._protocols import Storager
from storager._retry_policy import RetryPolicy
from storager.tree._values import (
    Converter,
    boolean,
    integer,
    log_level,
    logger_named,
    number,
    optional,
    record,
    size,
    string,
    table_of,
    tagged,
)

__all__ = ["NodeKind", "Pair", "Shape", "Slot", "kind_names", "node_kind", "register_kind"]


class Shape(enum.Enum):
    """What a child slot holds."""

    ONE = "a node"
    LIST = "an array of nodes"
    MAP = "a table of nodes"


@dataclass(frozen=True, slots=True)
class Slot:
    """A constructor parameter that takes child stores.

    Attributes:
        shape: One node, an array of nodes, or a table of named nodes.
        required: Whether a node of this kind must give it.
        positional: Passed by position (in declaration order, before any keyword);
            a positional array is spread (``Failover(primary, *alternatives)``).
    """

    shape: Shape
    required: bool = True
    positional: bool = False


@dataclass(frozen=True, slots=True)
class Pair:
    """A constructor parameter that takes a value.

    Attributes:
        convert: Checks the value read from the file and turns it into the argument.
        required: Whether a node of this kind must give it.
    """

    convert: Converter
    required: bool = False


@dataclass(frozen=True, slots=True)
class NodeKind:
    """How to build one kind of node.

    Attributes:
        name: The ``kind = "..."`` that selects it.
        target: The callable that builds it, or ``"module:attribute"`` to import on
            first use (so a kind costs nothing until a file uses it).
        slots: The parameters that take child stores, by name.
        pairs: The parameters that take values, by name.
        code_only: Parameters a file cannot give (callables), named so that the error
            for one can say why.
    """

    name: str
    target: str | Callable[..., Storager]
    slots: Mapping[str, Slot]
    pairs: Mapping[str, Pair] = field(default_factory=dict)
    code_only: frozenset[str] = frozenset()

    def factory(self) -> Callable[..., Storager]:
        """Return the callable that builds this kind (importing it on first use)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        return cast(Callable[..., Storager], getattr(importlib.import_module(module), attribute))

    def keys(self) -> str:
        """Return the keys a node of this kind takes, for messages."""
        return ", ".join(["kind", *self.slots, *self.pairs])


_lock = threading.Lock()
_kinds: dict[str, NodeKind] = {}


def register_kind(kind: NodeKind) -> None:
    """Make ``kind = "<kind.name>"`` build nodes of ``kind`` (replacing one of that name).

    A kind's name wins over a service scheme of the same name.
    """
    with _lock:
        _kinds[kind.name] = kind


def node_kind(name: str) -> NodeKind | None:
    """Return the kind registered as ``name``, or None."""
    return _kinds.get(name)


def kind_names() -> list[str]:
    """Return the names of every registered kind, sorted."""
    return sorted(_kinds)


# -- the combinators of storager.combinators ----------------------------------------------

_INNER = {"inner": Slot(Shape.ONE)}
_COMBINATORS = "storager.combinators"

_RETRY_POLICY = record(
    RetryPolicy,
    {
        "max_attempts": integer,
        "initial_backoff": number,
        "multiplier": number,
        "max_backoff": number,
        "jitter": number,
        "budget": number,
        "buffer_limit": size,
    },
)


_STRIPED = "storager.combinators.striped"


def _striped(name: str) -> Callable[..., Any]:
    """Return a callable that imports ``storager.combinators.striped.<name>`` when called.

    Striped needs its extra (pyeclib for ReedSolomon); a file without a striped node
    never imports it.
    """

    def build(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(_STRIPED), name)(*args, **kwargs)

    return build


_NO_KIND = frozenset({"kind"})

#: ``codec = {kind = "reed_solomon", data = 4, parity = 2}``, ``{kind = "replicas", n = 3}``
#: or ``{kind = "stripes", width = 3}``: the codec classes Striped takes.
_STRIPED_CODEC = tagged(
    {
        "reed_solomon": record(
            _striped("ReedSolomon"),
            {"data": integer, "parity": integer, "library": string, "ec_type": string},
            skip=_NO_KIND,
        ),
        "replicas": record(_striped("Replicas"), {"n": integer}, skip=_NO_KIND),
        "stripes": record(_striped("Stripes"), {"width": integer}, skip=_NO_KIND),
    }
)


for _kind in (
    NodeKind(
        "retry",
        f"{_COMBINATORS}:Retry",
        _INNER,
        {"policy": Pair(_RETRY_POLICY)},
        frozenset({"sleep", "clock", "rand", "retry_on"}),
    ),
    NodeKind(
        "timeout",
        f"{_COMBINATORS}:Timeout",
        _INNER,
        {
            "seconds": Pair(number, required=True),
            "per_op": Pair(table_of(optional(number))),
            "workers": Pair(integer),
            "grace": Pair(number),
        },
    ),
    NodeKind(
        "logged",
        f"{_COMBINATORS}:Logged",
        _INNER,
        {"logger": Pair(logger_named), "level": Pair(log_level)},
        frozenset({"on_success", "on_failure"}),
    ),
    NodeKind("readonly", f"{_COMBINATORS}:ReadOnly", _INNER),
    NodeKind(
        "prefixed",
        f"{_COMBINATORS}:Prefixed",
        _INNER,
        {"prefix": Pair(string, required=True), "work_dir": Pair(string)},
    ),
    NodeKind(
        "audited",
        f"{_COMBINATORS}:Audited",
        {"inner": Slot(Shape.ONE), "log_store": Slot(Shape.ONE)},
        {"prefix": Pair(string)},
    ),
    NodeKind(
        "cached",
        f"{_COMBINATORS}:Cached",
        {"front": Slot(Shape.ONE), "back": Slot(Shape.ONE)},
        {"max_bytes": Pair(optional(size)), "max_object_bytes": Pair(size)},
    ),
    NodeKind(
        "mirror",
        f"{_COMBINATORS}:Mirror",
        {"targets": Slot(Shape.MAP)},
        {
            "write": Pair(string),
            "read": Pair(string),
            "rollback": Pair(string),
            "workers": Pair(integer),
            "spool_memory": Pair(size),
            "queue_chunks": Pair(integer),
        },
    ),
    NodeKind(
        "failover",
        f"{_COMBINATORS}:Failover",
        {
            "primary": Slot(Shape.ONE, positional=True),
            "alternatives": Slot(Shape.LIST, positional=True),
        },
        {"probe": Pair(string), "probe_interval": Pair(number), "buffer_limit": Pair(size)},
        frozenset({"switch_on", "clock"}),
    ),
    NodeKind(
        "router",
        f"{_COMBINATORS}:Router",
        {"mounts": Slot(Shape.MAP)},
        {"work_dir": Pair(string)},
    ),
    NodeKind(
        "striped",
        f"{_STRIPED}:Striped",
        {
            "backends": Slot(Shape.MAP, positional=True),
            "manifests": Slot(Shape.ONE),
        },
        {
            "codec": Pair(_STRIPED_CODEC, required=True),
            "chunk_size": Pair(size),
            "placement": Pair(string),
            "quotas": Pair(table_of(size)),
            "fragment_digest": Pair(string),
            "work_dir": Pair(string),
            "write_quorum": Pair(optional(integer)),
            "stripes_in_flight": Pair(integer),
            "io_workers": Pair(optional(integer)),
            "failures_to_down": Pair(integer),
            "cooldown": Pair(number),
            "hedge_after": Pair(optional(number)),
            "default_content_type": Pair(string),
            "loose_pairs": Pair(boolean),
        },
        frozenset({"clock"}),
    ),
):
    register_kind(_kind)
del _kind
