"""Capability gating for the conformance suite, and the registry of what each test covers.

``@covers("copy")`` does two things: it records that the test checks ``copy`` (so
``test_every_declared_capability_has_tests`` can find operations and capability
protocols nothing checks), and it skips the test, with the reason, on a store that
lacks what the test needs: the protocol the operation belongs to, the operation in
``capability.operations``, a feature such as ``write_empty``, or a pair.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pytest

from storager._capability import OPERATIONS
from storager._protocols import CAPABILITIES, Storager

__all__ = ["COVERED", "covers", "declared_capabilities", "missing_coverage", "skip_unless"]

F = TypeVar("F", bound=Callable[..., Any])

#: Operation or protocol name -> the tests (``Class.test``) that check it.
COVERED: dict[str, set[str]] = {}

_CAPABILITY_META = type(Storager)


def skip_unless(
    store: Storager,
    ops: Iterable[str] = (),
    *,
    feature: str | None = None,
    accepts: tuple[str, str] | None = None,
) -> None:
    """Skip the running test, with the reason, unless ``store`` can do what it needs."""
    capability = store.metadata().capability
    for op in ops:
        protocol_name = OPERATIONS.get(op, "Storager")
        protocol = CAPABILITIES.get(protocol_name)
        if protocol is not None and not isinstance(store, protocol):
            article = "an" if protocol_name[0] in "AEIOU" else "a"
            pytest.skip(f"store is not {article} {protocol_name}")
        if not capability.supports(op):
            pytest.skip(f"{op} is not in capability.operations")
    if feature is not None and not getattr(capability, feature, False):
        pytest.skip(f"{feature} is not declared")
    if accepts is not None and not capability.accepts(*accepts):
        pytest.skip(f"{accepts[0]} does not accept the pair {accepts[1]!r}")


def covers(
    *ops: str, feature: str | None = None, accepts: tuple[str, str] | None = None
) -> Callable[[F], F]:
    """Mark a suite test as checking ``ops``, and skip it where the store lacks them.

    The test must take the ``store`` fixture. Third-party suites may use it on their
    own tests, for operations or capability protocols the built-in suite does not know.

    Args:
        ops: Operation names (``"copy"``), or capability protocol names for a protocol
            the suite does not know; the store must support each.
        feature: A boolean ``Capability`` field the store must declare.
        accepts: ``(operation, pair)``: the operation must accept the pair.
    """
    unknown = [op for op in ops if op not in OPERATIONS and not op[:1].isupper()]
    if unknown:
        raise ValueError(f"covers(): unknown operations {unknown}")

    def decorate(fn: F) -> F:
        qualname = fn.__qualname__
        for op in ops:
            COVERED.setdefault(op, set()).add(qualname)
            if op in OPERATIONS:
                COVERED.setdefault(OPERATIONS[op], set()).add(qualname)
        gated_ops = [op for op in ops if op in OPERATIONS]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            store = kwargs.get("store")
            if store is None:
                raise TypeError(f"{qualname}: a @covers test must take the 'store' fixture")
            skip_unless(store, gated_ops, feature=feature, accepts=accepts)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def declared_capabilities(store: Storager) -> set[str]:
    """Return the capability protocols ``store`` declares, by name, known or not.

    A protocol is a class made by storager's capability metaclass with ``Protocol``
    among its bases; services and combinators inherit them but are not protocols.
    """
    names = set()
    for cls in type(store).__mro__:
        if cls is Storager or not isinstance(cls, _CAPABILITY_META):
            continue
        if getattr(cls, "_is_protocol", False):
            names.add(cls.__name__)
    return names


def missing_coverage(store: Storager) -> list[str]:
    """Return what ``store`` declares that no registered test covers."""
    missing = [
        f"capability protocol {name}"
        for name in sorted(declared_capabilities(store))
        if not COVERED.get(name)
    ]
    missing += [
        f"operation {op}"
        for op in sorted(store.metadata().capability.operations)
        if not COVERED.get(op)
    ]
    return missing
