"""Tracing: which nodes of a combinator tree one call passed through, and how long each took.

A :func:`trace` block installs a recorder in a context variable; every combinator (and
every leaf store a combinator calls) opens a :class:`Span` while it works. Pools copy
the context into their threads, so spans of parallel calls land under their parent.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["NO_SPAN", "Span", "Trace", "span", "trace"]

T = TypeVar("T")


@dataclass(slots=True)
class Span:
    """One node's part in a traced call.

    Attributes:
        node: The node's label (``"retry"``, ``"mirror"``, ``"memory /"``...).
        op: The operation the node ran.
        path: The path as the node was given it.
        start: When it started (``time.perf_counter``).
        duration: How long it took, in seconds (``None`` while running).
        outcome: ``"ok"`` or the error's class name.
        children: Spans of the calls it made, in start order.
    """

    node: str
    op: str
    path: str
    start: float
    duration: float | None = None
    outcome: str = "ok"
    children: list[Span] = field(default_factory=list)


class Trace:
    """The spans recorded by one :func:`trace` block."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def _add(self, parent: Span | None, child: Span) -> None:
        with self._lock:
            (parent.children if parent is not None else self.spans).append(child)

    def render(self) -> str:
        """Return the spans as an indented tree, one line per node with its duration."""
        lines: list[str] = []

        def walk(spans: list[Span], depth: int) -> None:
            for s in sorted(spans, key=lambda s: s.start):
                took = "running" if s.duration is None else f"{s.duration * 1000:.3f} ms"
                path = f" {s.path}" if s.path else ""
                lines.append(f"{'  ' * depth}{s.node}: {s.op}{path} {s.outcome} {took}")
                walk(s.children, depth + 1)

        walk(self.spans, 0)
        return "\n".join(lines)

    def nodes(self) -> list[str]:
        """Return every node label the traced calls passed through, depth first."""
        out: list[str] = []

        def walk(spans: list[Span]) -> None:
            for s in sorted(spans, key=lambda s: s.start):
                out.append(s.node)
                walk(s.children)

        walk(self.spans)
        return out


#: The context of a call when no trace is active: one shared, reusable null context.
NO_SPAN: contextlib.AbstractContextManager[None] = contextlib.nullcontext()

_active: contextvars.ContextVar[tuple[Trace, Span | None] | None] = contextvars.ContextVar(
    "storager_trace", default=None
)


@contextlib.contextmanager
def trace() -> Iterator[Trace]:
    """Record the path through the tree of every call made inside the block.

    Example:
        >>> with trace() as t:
        ...     store.read("a.txt")  # doctest: +SKIP
        >>> print(t.render())  # doctest: +SKIP
    """
    recorder = Trace()
    token = _active.set((recorder, None))
    try:
        yield recorder
    finally:
        _active.reset(token)


@contextlib.contextmanager
def span(node: str, op: str, path: str) -> Iterator[None]:
    """Time the block as one node's span, when a trace is active (else nearly free)."""
    current = _active.get()
    if current is None:
        yield
        return
    recorder, parent = current
    s = Span(node, op, path, time.perf_counter())
    recorder._add(parent, s)
    token = _active.set((recorder, s))
    try:
        yield
    except BaseException as exc:
        s.outcome = type(exc).__name__
        raise
    finally:
        s.duration = time.perf_counter() - s.start
        _active.reset(token)


def in_context(fn: Callable[..., T]) -> Callable[..., T]:
    """Bind ``fn`` to a copy of the current context, for running in a pool thread."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    return run


def tracing() -> bool:
    """Return whether a trace is active in this context."""
    return _active.get() is not None
