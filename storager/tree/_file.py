"""A tree file: read and checked whole, then each tree built when first asked for.

Reading checks the structure of every tree (kinds, keys, required children,
references, cycles), so a typo anywhere in the file is found at once. Values
(``${VAR}`` expansion, conversion, connection strings) are taken when a tree is
built, so a variable used only by another tree need not be set.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, BinaryIO, TextIO

from storager._errors import (
    ConnectionStringInvalidError,
    InvalidArgumentError,
    ServiceNotRegisteredError,
    StorageError,
)
from storager._pairs import parse_text_value
from storager._protocols import Storager
from storager._registry import parse_connection_string, service_class
from storager._service import Service, map_os_error
from storager.tree._kinds import NodeKind, Shape, Slot, kind_names, node_kind
from storager.tree._values import Environment, Where, error_class, error_text

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "Source", "TreeFile"]

#: A tree file larger than this is refused before it is parsed.
MAX_FILE_BYTES = 1 << 20
#: Nodes nested deeper than this are refused (references do not count: they are checked
#: for cycles instead).
MAX_DEPTH = 32

#: A path to a tree file, or a file opened for reading (binary, or text).
Source = str | os.PathLike[str] | BinaryIO | TextIO

_TREE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_TOP_KEYS = ("default", "trees")
_NODE_FORMS = (
    'a node is a connection string, a table with kind = "..." and its keys, '
    'or {tree = "name"} for another tree of the file'
)


class TreeFile:
    """The trees of one TOML file, each built once on first use and then shared.

    Use :meth:`read`, then :meth:`build`; or :func:`storager.load` for one tree.
    Closing the file closes every tree it built.
    """

    def __init__(
        self, file: str, trees: Mapping[str, Any], default: str | None, env: Environment
    ) -> None:
        self._file = file
        self._trees = dict(trees)
        self._default = default
        self._env = env
        self._built: dict[str, Storager] = {}
        self._building: list[str] = []
        # Re-entrant: building a tree builds the trees it refers to.
        self._lock = threading.RLock()

    # -- reading --------------------------------------------------------------------------

    @classmethod
    def read(cls, source: Source, *, env: Mapping[str, str] | None = None) -> TreeFile:
        """Read and check a tree file.

        Args:
            source: A path, or a file opened for reading.
            env: Where ``${NAME}`` looks (default ``os.environ``); pass a smaller
                mapping to limit what a file may read.

        Raises:
            ConnectionStringInvalidError: Not TOML, or a tree that cannot be built
                (unknown kind or key, missing child, unknown tree, cycle), naming the
                file, the node path and what was wrong.
            NotFoundError: No such file (and the other errors of opening it).
        """
        file, document = _parse(source)
        top = Where(file)
        for key in document:
            if key not in _TOP_KEYS:
                raise top.key(key).error(f"unknown key (a tree file has {', '.join(_TOP_KEYS)})")
        trees = document.get("trees")
        if not isinstance(trees, dict) or not trees:
            raise top.key("trees").error(
                'missing or empty: define a tree as [trees.NAME] with kind = "..."'
            )
        for name in trees:
            if not _TREE_NAME.fullmatch(name):
                raise (
                    top.key("trees")
                    .key(name)
                    .error(
                        "a tree name is letters, digits, _, - and . (at most 100), "
                        "starting with a letter, digit or _"
                    )
                )
        default = document.get("default")
        if default is not None and (not isinstance(default, str) or default not in trees):
            raise top.key("default").error(f"names no tree of this file (trees: {_names(trees)})")
        tree_file = cls(file, trees, default, Environment(os.environ if env is None else env))
        tree_file._check()
        return tree_file

    @property
    def file(self) -> str:
        """The file's name, as errors show it."""
        return self._file

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the file's trees, in file order."""
        return tuple(self._trees)

    @property
    def default(self) -> str | None:
        """The tree :meth:`build` builds when given no name, or None if it must be named."""
        if self._default is not None:
            return self._default
        return next(iter(self._trees)) if len(self._trees) == 1 else None

    # -- building -------------------------------------------------------------------------

    def build(self, name: str | None = None) -> Storager:
        """Return the tree ``name`` (default: :attr:`default`), building it on first use.

        A tree is built once per file; a tree that others refer to is shared by them.
        Safe to call from several threads.

        Raises:
            ConnectionStringInvalidError: An unknown tree, no default, an unset
                variable, or a value a constructor refused, naming the node path.
            PairRequiredError, PairInvalidError: A service refused its pairs.
            StorageError: A constructor failed otherwise (with a note naming the node).
        """
        if name is None:
            name = self.default
            if name is None:
                raise Where(self._file).error(
                    f"the file has several trees ({_names(self._trees)}) and no default = "
                    "...; name the tree to load"
                )
        elif name not in self._trees:
            raise Where(self._file).error(f"no tree named {name!r} (trees: {_names(self._trees)})")
        with self._lock:
            store = self._built.get(name)
            if store is None:
                store = self._built[name] = self._build_tree(name)
            return store

    def _build_tree(self, name: str) -> Storager:
        if name in self._building:  # _check refuses cycles; this guards against a mistake
            raise Where(self._file, f"trees.{name}").error("the tree refers to itself")
        self._building.append(name)
        try:
            return self._build(self._trees[name], Where(self._file).key("trees").key(name))
        except StorageError as exc:
            if self._env.reveals(str(exc)):
                raise self._scrubbed(exc) from None
            raise
        finally:
            self._building.pop()

    def _scrubbed(self, exc: StorageError) -> StorageError:
        """Return ``exc`` again with every value taken from the environment hidden."""
        scrub = self._env.scrub
        return error_class(exc)(exc.op, exc.service, scrub(exc.path), scrub(exc.reason))

    def _build(self, node: Any, where: Where) -> Storager:
        if isinstance(node, str):
            return self._open_url(node, where)
        if "tree" in node:
            return self.build(node["tree"])
        kind = node_kind(node["kind"])
        if kind is None:
            return self._build_service(node, where)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        children: list[Storager] = []  # built so far, closed again if the node fails
        try:
            for name, slot in kind.slots.items():
                if name in node:
                    built = self._build_slot(slot, node[name], where.key(name), children)
                    if not slot.positional:
                        kwargs[name] = built
                    elif slot.shape is Shape.LIST:
                        args.extend(built)
                    else:
                        args.append(built)
            for name, pair in kind.pairs.items():
                if name in node:
                    at = where.key(name)
                    kwargs[name] = pair.convert(self._env.expand(node[name], at), at)
            try:
                factory = kind.factory()
            except ImportError as exc:
                raise where.error(
                    f"{kind.name} needs packages that are not installed ({exc.name})"
                ) from exc
        except BaseException:
            self._discard(children)
            raise
        return self._construct(factory, args, kwargs, where, children)

    def _build_slot(self, slot: Slot, value: Any, where: Where, children: list[Storager]) -> Any:
        """Build the node(s) of one slot, adding each to ``children`` as it is built."""

        def one(node: Any, at: Where) -> Storager:
            store = self._build(node, at)
            children.append(store)
            return store

        if slot.shape is Shape.ONE:
            return one(value, where)
        if slot.shape is Shape.LIST:
            return [one(v, where.item(i)) for i, v in enumerate(value)]
        return {k: one(v, where.key(k)) for k, v in value.items()}

    def _open_url(self, text: str, where: Where) -> Storager:
        url = self._env.expand(text, where, url=True)
        try:
            cls, pairs = parse_connection_string(url)
        except (InvalidArgumentError, ServiceNotRegisteredError) as exc:
            raise where.error(error_text(exc)) from exc
        return self._construct(cls, [], pairs, where, [])

    def _build_service(self, node: Mapping[str, Any], where: Where) -> Storager:
        scheme = node["kind"]
        cls = service_class(scheme)
        pairs: dict[str, Any] = {}
        for key, raw in node.items():
            if key == "kind":
                continue
            at, spec = where.key(key), cls.init_pairs[key]
            value = self._env.expand(raw, at)
            if isinstance(value, str) and spec.type in ("int", "float", "bool"):
                try:
                    value = parse_text_value(scheme, spec, value)
                except ConnectionStringInvalidError as exc:
                    raise at.error(exc.reason) from None
            pairs[key] = value
        return self._construct(cls, [], pairs, where, [])

    def _construct(
        self,
        factory: Any,
        args: list[Any],
        kwargs: dict[str, Any],
        where: Where,
        children: list[Storager],
    ) -> Storager:
        try:
            store = factory(*args, **kwargs)
        except BaseException as exc:
            self._discard(children)
            if isinstance(
                exc, InvalidArgumentError | ServiceNotRegisteredError | NotImplementedError
            ):
                text = error_text(exc) if isinstance(exc, StorageError) else str(exc)
                raise where.error(text, error_class(exc)) from exc
            if isinstance(exc, StorageError):
                exc.add_note(f"while building {where.node} of {where.file}")
                raise
            if isinstance(exc, TypeError | ValueError):
                raise where.error(f"{type(exc).__name__}: {exc}") from exc
            raise
        if not isinstance(store, Storager):
            raise where.error(f"built a {type(store).__name__}, which is not a Storager")
        return store

    def _discard(self, children: list[Storager]) -> None:
        """Close the children built for a node that failed (not trees others may share)."""
        shared = {id(s) for s in self._built.values()}
        for child in children:
            if id(child) not in shared:
                # The construction error is the one to report.
                with contextlib.suppress(Exception):
                    child.close()

    # -- checking -------------------------------------------------------------------------

    def _check(self) -> None:
        """Check every tree's structure, every reference, and that none forms a cycle."""
        edges: dict[str, list[tuple[str, Where]]] = {}
        top = Where(self._file).key("trees")
        for name, node in self._trees.items():
            edges[name] = []
            self._check_node(node, top.key(name), 0, edges[name])
        state: dict[str, int] = {}  # 1: on the current path; 2: done

        def visit(name: str, trail: list[tuple[str, Where]]) -> None:
            # trail: each tree on the current path, with the reference that led to it.
            state[name] = 1
            for target, at in edges[name]:
                if state.get(target) == 1:
                    start = [tree for tree, _ in trail].index(target)
                    chain = " -> ".join(w.node for _, w in [*trail[start + 1 :], (target, at)])
                    raise at.error(f"the trees refer to each other in a cycle ({chain})")
                if state.get(target) is None:
                    visit(target, [*trail, (target, at)])
            state[name] = 2

        for name in self._trees:
            if state.get(name) is None:
                visit(name, [(name, top.key(name))])

    def _check_node(
        self, node: Any, where: Where, depth: int, refs: list[tuple[str, Where]]
    ) -> None:
        if depth > MAX_DEPTH:
            raise where.error(f"nodes nested more than {MAX_DEPTH} deep")
        if isinstance(node, str):
            return  # a connection string: parsed when built, after ${VAR} expansion
        if not isinstance(node, dict):
            raise where.error(_NODE_FORMS)
        if "tree" in node:
            target = node["tree"]
            if len(node) != 1:
                raise where.error('a reference to another tree takes only tree = "name"')
            if not isinstance(target, str) or target not in self._trees:
                raise where.key("tree").error(
                    f"names no tree of this file (trees: {_names(self._trees)})"
                )
            refs.append((target, where.key("tree")))
            return
        kind_name = node.get("kind")
        if not isinstance(kind_name, str):
            raise where.error(f"missing kind; {_NODE_FORMS}")
        kind = node_kind(kind_name)
        if kind is None:
            self._check_service(node, where, kind_name)
            return
        self._check_keys(kind, node, where)
        for name, slot in kind.slots.items():
            at = where.key(name)
            if name not in node:
                if slot.required:
                    raise where.error(f"{kind.name} needs {name} ({slot.shape.value})")
                continue
            value = node[name]
            if slot.shape is Shape.ONE:
                self._check_node(value, at, depth + 1, refs)
            elif slot.shape is Shape.LIST:
                if not isinstance(value, list):
                    raise at.error(f"expected {slot.shape.value}")
                for i, item in enumerate(value):
                    self._check_node(item, at.item(i), depth + 1, refs)
            else:
                if not isinstance(value, dict) or "kind" in value or "tree" in value:
                    raise at.error(f"expected {slot.shape.value}, each under its own name")
                for key, item in value.items():
                    self._check_node(item, at.key(key), depth + 1, refs)
        for name, pair in kind.pairs.items():
            if pair.required and name not in node:
                raise where.error(f"{kind.name} needs {name}")

    def _check_keys(self, kind: NodeKind, node: Mapping[str, Any], where: Where) -> None:
        for key in node:
            if key == "kind" or key in kind.slots or key in kind.pairs:
                continue
            if key in kind.code_only:
                raise where.key(key).error(
                    f"{kind.name}'s {key} takes code (a callable), which a file never "
                    "names; set it in Python on a store built there"
                )
            raise where.key(key).error(f"unknown key (a {kind.name} node takes {kind.keys()})")

    def _check_service(self, node: Mapping[str, Any], where: Where, scheme: str) -> None:
        try:
            cls: type[Service] = service_class(scheme)
        except ServiceNotRegisteredError as exc:
            raise where.key("kind").error(
                f"unknown kind {scheme!r}: no combinator ({', '.join(kind_names())}) "
                f"and {exc.reason}"
            ) from None
        specs = cls.init_pairs
        for key in node:
            if key != "kind" and key not in specs:
                raise where.key(key).error(
                    f"unknown pair of {scheme} (known: {', '.join(sorted(specs))})"
                )
        for key, spec in specs.items():
            if spec.required and key not in node:
                raise where.error(f"{scheme} needs the pair {key}")

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Close every tree built so far (each once)."""
        built, self._built = list(self._built.values()), {}
        for store in built:
            store.close()

    def __enter__(self) -> TreeFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _names(trees: Mapping[str, Any]) -> str:
    return ", ".join(trees)


def _parse(source: Source) -> tuple[str, dict[str, Any]]:
    """Read ``source`` (at most MAX_FILE_BYTES) and parse it as TOML."""
    data: str | bytes
    if isinstance(source, str | os.PathLike):
        file = os.fspath(source)
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise map_os_error(exc, "load", "", file) from exc
    else:
        file = str(getattr(source, "name", "<tree file>"))
        data = source.read(MAX_FILE_BYTES + 1)
    where = Where(file)
    if len(data) > MAX_FILE_BYTES:
        raise where.error(f"larger than {MAX_FILE_BYTES} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise where.error("not UTF-8 text") from None
    try:
        return file, tomllib.loads(data)
    except tomllib.TOMLDecodeError as exc:
        raise where.error(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise where.error("not valid TOML: nested too deeply") from None
