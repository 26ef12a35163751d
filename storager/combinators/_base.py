"""The base every combinator extends, and the one mechanism that gives it capabilities.

A combinator is an instance of exactly the capability protocols its children allow.
``Wrapper.__new__`` asks the class which capabilities the constructor's children
allow (``_allowed_capabilities``), then instantiates a subclass made by
:func:`capability_class`: the base plus one mixin per capability, cached per
(base, capabilities). The capability methods live only on those mixins, so a
``Mirror`` over stores without ``copy`` has no ``copy`` method and is not a
``Copier``; ``isinstance`` stays the plain MRO check.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO, ClassVar, TypeVar, cast

from storager._async_twin import HasAsyncView
from storager._capability import OPERATIONS, Capability
from storager._errors import InvalidArgumentError, StorageError
from storager._object import StorageMeta
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
    WriteData,
)
from storager._streams import iter_chunks
from storager.combinators._trace import span, tracing

__all__ = [
    "CAPABILITY_METHODS",
    "MUTATING",
    "Wrapper",
    "capabilities_of",
    "capability_class",
    "is_node",
    "label",
    "listing_through",
    "meet_capability",
    "replayable",
    "rewinder",
]

T = TypeVar("T")
W = TypeVar("W", bound="Wrapper")

#: Every capability protocol, in a fixed order, and the methods it adds.
CAPABILITY_METHODS: Mapping[type, tuple[str, ...]] = MappingProxyType(
    {
        Copier: ("copy",),
        Mover: ("move",),
        Segmenter: (
            "create_multipart",
            "write_multipart",
            "complete_multipart",
            "abort_multipart",
            "list_multipart",
        ),
        Appender: ("append",),
        Direr: ("create_dir",),
        Linker: ("create_link",),
        Presigner: ("presign_read", "presign_write"),
    }
)
_ORDER = tuple(CAPABILITY_METHODS)
CORE_OPS = ("list", "read", "open_reader", "write", "stat", "delete")

#: Operations that change what a store holds.
MUTATING = frozenset(
    {
        "write",
        "delete",
        "copy",
        "move",
        "create_multipart",
        "write_multipart",
        "complete_multipart",
        "abort_multipart",
        "append",
        "create_dir",
        "create_link",
        "presign_write",
    }
)

#: The name of the child that served the latest call in this context (for Logged).
served_by: contextvars.ContextVar[str] = contextvars.ContextVar("storager_served_by", default="")


def capabilities_of(store: object) -> frozenset[type]:
    """Return the capability protocols ``store`` is an instance of."""
    return frozenset(c for c in _ORDER if isinstance(store, c))


def common_capabilities(stores: Iterable[object]) -> frozenset[type]:
    """Return the capabilities every one of ``stores`` has."""
    result = frozenset(_ORDER)
    for store in stores:
        result &= capabilities_of(store)
    return result


_classes: dict[tuple[type, frozenset[type]], type] = {}
_classes_lock = threading.Lock()


def capability_class(base: type[W], capabilities: Iterable[type]) -> type[W]:
    """Return the subclass of ``base`` that is an instance of exactly ``capabilities``.

    The subclass inherits ``base`` and, for each capability, the mixin that
    ``base._capability_mixins`` names for it. Classes are cached, so a given set of
    capabilities always yields the same class.

    Raises:
        TypeError: ``base`` has no mixin for one of the capabilities.
    """
    caps = frozenset(capabilities)
    if not caps:
        return base
    key = (base, caps)
    cls = _classes.get(key)
    if cls is not None:
        return cast(type[W], cls)
    with _classes_lock:
        cls = _classes.get(key)
        if cls is None:
            ordered = [c for c in _ORDER if c in caps]
            missing = [c.__name__ for c in ordered if c not in base._capability_mixins]
            if missing:
                raise TypeError(f"{base.__name__} has no mixin for {', '.join(missing)}")
            mixins = tuple(base._capability_mixins[c] for c in ordered)
            name = f"{base.__name__}[{','.join(c.__name__ for c in ordered)}]"
            namespace = {
                "_capability_base": base,
                "__module__": base.__module__,
                "__qualname__": name,
                "__doc__": base.__doc__,
            }
            # Mixins first: each subclasses a shared ancestor of base, which C3 puts after base.
            cls = type.__call__(type(base), name, (*mixins, base), namespace)
            _classes[key] = cls
    return cast(type[W], cls)


def meet_capability(capabilities: Sequence[Capability], ops: Iterable[str]) -> Capability:
    """Return what all of ``capabilities`` can do, restricted to ``ops``.

    An operation is kept when every capability supports it, with the pairs they all
    accept; a feature holds when it holds for all; limits take the strictest value.
    """
    operations: dict[str, frozenset[str]] = {}
    for op in ops:
        if all(c.supports(op) for c in capabilities):
            pairs = [c.operations[op] for c in capabilities]
            operations[op] = frozenset.intersection(*pairs) if pairs else frozenset()
    values: dict[str, Any] = {"operations": MappingProxyType(operations)}
    for f in fields(Capability):
        if f.name == "operations":
            continue
        given = [getattr(c, f.name) for c in capabilities]
        if f.type in ("bool", bool):
            values[f.name] = bool(given) and all(given)
        else:
            known = [v for v in given if v is not None]
            if not known:
                values[f.name] = None
            else:
                values[f.name] = max(known) if f.name.endswith("_min") else min(known)
    return Capability(**values)


def ops_of(capabilities: Iterable[type]) -> list[str]:
    """Return the core operations plus the methods of ``capabilities``."""
    ops = list(CORE_OPS)
    for cap in capabilities:
        ops.extend(CAPABILITY_METHODS[cap])
    return [op for op in OPERATIONS if op in ops]


def is_node(store: object) -> bool:
    """Whether ``store`` is a combinator of either form (it has children and a label)."""
    return isinstance(store, Wrapper) or (
        callable(getattr(store, "children", None))
        and callable(getattr(store, "describe_label", None))
    )


def label(store: object) -> str:
    """Return a short label for a node of the tree: the combinator, or the leaf's service."""
    if is_node(store):
        return cast(Wrapper, store).describe_label()
    try:
        meta = cast(Storager, store).metadata()
    except Exception:
        return type(store).__name__
    name = f" {meta.name}" if meta.name and meta.service != "fs" else ""
    return f"{meta.service}{name} {meta.work_dir}"


#: Where a combinator keeps calls in order (the async side's is one asyncio lock per loop).
OrderLock = threading.Lock

#: What a delegate runs on its child: ``fn(child)``.
Call = Callable[[Storager], T]


def call_child(child: Storager, op: str, path: str, fn: Callable[[Storager], T]) -> T:
    """Call ``fn(child)``, recording a span for leaf stores when a trace is active."""
    if not tracing() or isinstance(child, Wrapper):
        return fn(child)
    with span(label(child), op, path):
        return fn(child)


def call_listing(
    child: Storager, op: str, path: str, fn: Callable[[Storager], Iterator[T]]
) -> Iterator[T]:
    """Start ``fn(child)``'s listing now (its first item fetched), so errors surface here."""
    return call_child(child, op, path, lambda s: prime(fn(s)))


def listing_through(
    call: Callable[..., Any],
    op: str,
    path: str,
    fn: Callable[[Storager], Iterator[T]],
    out: Callable[[T], T] | None = None,
) -> Iterator[T]:
    """A listing a Delegate starts through its ``_call`` (and its ``_around``).

    The first item is fetched inside the call, so errors surface there and Retry,
    Timeout and the others cover it. ``out`` maps each item.
    """
    it: Iterator[T] = call(op, path, lambda s: prime(fn(s)))
    return it if out is None else (out(o) for o in it)


def prime(iterator: Iterator[T]) -> Iterator[T]:
    """Fetch the first item now, so that errors surface at call time, not on next()."""
    it = iter(iterator)
    try:
        first = next(it)
    except StopIteration:
        return iter(())
    return itertools.chain((first,), it)


def rewinder(data: object) -> Callable[[], WriteData] | None:
    """Return a factory that gives ``data`` again from its start without reading it, or None.

    Bytes are given as they are; a seekable file is rewound to where it was now. Any
    other data must be read to be replayed (``replayable``), and gets None.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        return lambda: data
    seek = getattr(data, "seek", None)
    seekable = getattr(data, "seekable", None)
    if seek is None or seekable is None or inspect.iscoroutinefunction(seek):
        return None
    answer = seekable()
    if inspect.isawaitable(answer):  # an async file (aiofiles): not rewound here
        if inspect.iscoroutine(answer):
            answer.close()
        return None
    if answer is True:
        stream = cast(BinaryIO, data)
        start = stream.tell()

        def rewind() -> WriteData:
            stream.seek(start)
            return stream

        return rewind
    return None


def replayable(
    op: str, service: str, path: str, data: WriteData, limit: int
) -> tuple[Callable[[], WriteData], bool]:
    """Return a factory that yields ``data`` again for each attempt, and whether it can.

    Bytes replay as they are; a seekable file rewinds to where it started; any other
    stream is buffered up to ``limit`` bytes. A longer stream cannot be replayed: the
    factory then returns the buffered part followed by the rest, once, and the flag
    is False.
    """
    again = rewinder(data)
    if again is not None:
        return again, True
    chunks = iter_chunks(op, service, path, data)
    buffered: list[bytes] = []
    total = 0
    for chunk in chunks:
        buffered.append(bytes(chunk))
        total += len(chunk)
        if total > limit:
            rest = _handed_out(buffered, chunks)
            return (lambda: rest), False  # noqa: B023 - returned at once, never rebound
    return (lambda: list(buffered)), True


def _handed_out(
    buffered: list[bytes], rest: Iterator[bytes | bytearray | memoryview]
) -> Iterator[bytes]:
    """Yield ``buffered`` then ``rest``, letting go of each buffered chunk once yielded.

    A stream too long to replay keeps nothing it has already given: the write's
    memory stays that of the store below, not ``limit`` more.
    """
    queue = collections.deque(buffered)
    buffered.clear()
    while queue:
        yield queue.popleft()
    for chunk in rest:
        yield bytes(chunk)


def check_names(op: str, service: str, names: Iterable[str], known: Iterable[str]) -> None:
    """Raise InvalidArgumentError for a name not among ``known``."""
    known_set = set(known)
    for name in names:
        if name not in known_set:
            raise InvalidArgumentError(
                op,
                service,
                "",
                f"unknown target {name!r}; known: {', '.join(sorted(known_set))}",
            )


class Wrapper(HasAsyncView, Storager):
    """Base of every combinator: a store made of child stores.

    Subclasses set ``combinator`` (the service name in ``metadata()``), implement
    ``_allowed_capabilities`` (a classmethod given the constructor's arguments) and
    ``children``, and map each capability protocol to a mixin class in
    ``_capability_mixins``.
    """

    combinator: ClassVar[str] = "wrapper"
    _capability_mixins: ClassVar[Mapping[type, type]] = {}
    _capability_base: ClassVar[type | None] = None
    _closed: bool = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        base = cast(type[Wrapper], cls.__dict__.get("_capability_base") or cls)
        caps = base._allowed_capabilities(*args, **kwargs)
        return object.__new__(capability_class(base, caps))

    @classmethod
    def _allowed_capabilities(cls, *args: Any, **kwargs: Any) -> frozenset[type]:
        """Return the capabilities an instance built from these arguments has."""
        return frozenset()

    def children(self) -> Mapping[str, Storager]:
        """Return the child stores by name, in order."""
        raise NotImplementedError

    def describe_label(self) -> str:
        """Return how this node appears in ``describe`` and traces."""
        return self.combinator

    # -- what every combinator shares ---------------------------------------------------

    def metadata(self) -> StorageMeta:
        """Return the combinator's name, its children's work_dir, and what it can do."""
        kids = list(self.children().values())
        metas = [k.metadata() for k in kids]
        caps = capabilities_of(self)
        return StorageMeta(
            self.combinator,
            "",
            metas[0].work_dir if metas else "/",
            meet_capability([m.capability for m in metas], ops_of(caps)),
        )

    def close(self) -> None:
        """Close the children (each once) and release the combinator's own resources."""
        if self._closed:
            return
        self._closed = True
        try:
            self._close()
            self._drop_async_view()
        finally:
            seen: set[int] = set()
            for child in self.children().values():
                if id(child) not in seen:
                    seen.add(id(child))
                    child.close()

    def _close(self) -> None:
        """Release the combinator's own resources (pools)."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        # As a service (storager._service): a copy would share the children, their
        # connections and the cached async view, and lose the capability class.
        raise TypeError(
            f"cannot pickle or copy {self!r}: a combinator holds its child stores; "
            "build it again, or describe it in a tree.toml and storager.load() it"
        )

    def __enter__(self: W) -> W:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kids = ", ".join(f"{k}={v!r}" for k, v in self.children().items())
        return f"<{type(self).__name__} {kids}>"


#: Set while a call must not be attempted more than once (its data cannot be replayed).
single_attempt: contextvars.ContextVar[str] = contextvars.ContextVar(
    "storager_single_attempt", default=""
)


def is_transient(exc: BaseException) -> bool:
    """Return whether trying again (here or elsewhere) may succeed."""
    if isinstance(exc, StorageError):
        return exc.retryable
    return isinstance(exc, ConnectionError | TimeoutError)
