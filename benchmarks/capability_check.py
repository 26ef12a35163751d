"""The capability-check benchmark of the go-storage proposal, in Python.

How much does it cost to ask a store whether it can do something, for both answers?
Each row is one way to ask, with a "yes" store and a "no" store:

- storager: ``isinstance(store, storager.Copier)`` on our capability protocols, whose
  check is nominal (an MRO walk in C);
- a naive ``typing.runtime_checkable`` Protocol with the same methods (structural:
  it looks up every member on each check);
- an ``abc.ABC`` base with the same abstract methods;
- a capability flag attribute: ``getattr(store, "can_copy", False)``;
- try/except: call a method that raises ``NotImplementedError``, or touch a missing
  attribute and catch ``AttributeError``; the "yes" answer is a successful lookup.

The stores are real ones (memory has every capability, fs has no ``Segmenter``);
the ABC and flag rows use subclasses of them that add the base or the flag.

Run ``python benchmarks/capability_check.py`` for ns per check from ``timeit`` (best
of several repeats of many iterations, the empty-loop cost not subtracted);
``benchmarks/test_capability_check.py`` gives the relative table under pytest-benchmark.
"""

from __future__ import annotations

import abc
import argparse
import os
import sys
import tempfile
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import storager
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

#: The target: a check costs at most this, for both answers, on Python 3.11.
TARGET_NS = 150.0


# -- the alternatives, with the same method sets as Copier and Segmenter ------------------


@runtime_checkable
class NaiveCopier(Protocol):
    def copy(self, src: str, dst: str, **pairs: Any) -> None: ...


@runtime_checkable
class NaiveSegmenter(Protocol):
    def create_multipart(self, path: str, **pairs: Any) -> Any: ...
    def write_multipart(self, multipart: Any, number: int, data: Any, **pairs: Any) -> Any: ...
    def complete_multipart(self, multipart: Any, parts: Any, **pairs: Any) -> Any: ...
    def abort_multipart(self, multipart: Any, **pairs: Any) -> None: ...
    def list_multipart(self, multipart: Any, **pairs: Any) -> Iterator[Any]: ...


class AbcCopier(abc.ABC):
    @abc.abstractmethod
    def copy(self, src: str, dst: str, **pairs: Any) -> None: ...


class AbcSegmenter(abc.ABC):
    @abc.abstractmethod
    def create_multipart(self, path: str, **pairs: Any) -> Any: ...
    @abc.abstractmethod
    def write_multipart(self, multipart: Any, number: int, data: Any, **pairs: Any) -> Any: ...
    @abc.abstractmethod
    def complete_multipart(self, multipart: Any, parts: Any, **pairs: Any) -> Any: ...
    @abc.abstractmethod
    def abort_multipart(self, multipart: Any, **pairs: Any) -> None: ...
    @abc.abstractmethod
    def list_multipart(self, multipart: Any, **pairs: Any) -> Iterator[Any]: ...


class MemoryWithAbc(MemoryStorage, AbcCopier):
    """The memory store declaring Copier the ABC way."""


class MemoryWithFlag(MemoryStorage):
    """The memory store declaring Copier with a flag."""

    can_copy = True


class FsWithStub(FsStorage):
    """The fs store with a multipart method that only says it is not implemented."""

    def create_multipart(self, path: str, **pairs: Any) -> Any:
        raise NotImplementedError("create_multipart")


@dataclass(frozen=True)
class Case:
    """One row: how the check is written, and the answer it must give."""

    name: str
    answer: bool
    stmt: str  # a statement for timeit, run in the namespace of :func:`namespace`
    check: Callable[[dict[str, Any]], bool]  # the same check as a function, for tests


def _try_call(store: Any) -> bool:
    try:
        store.create_multipart("a")
    except NotImplementedError:
        return False
    return True


def _try_attr(store: Any, name: str) -> bool:
    try:
        getattr(store, name)
    except AttributeError:
        return False
    return True


TRY_CALL = """\
try:
    fs_stub.create_multipart("a")
except NotImplementedError:
    pass
"""
TRY_ATTR_NO = """\
try:
    fs.create_multipart
except AttributeError:
    pass
"""
TRY_ATTR_YES = """\
try:
    memory.copy
except AttributeError:
    pass
"""

CASES = [
    Case("storager isinstance", True, "isinstance(memory, Copier)",
         lambda ns: isinstance(ns["memory"], storager.Copier)),
    Case("storager isinstance", False, "isinstance(fs, Segmenter)",
         lambda ns: isinstance(ns["fs"], storager.Segmenter)),
    Case("runtime_checkable Protocol", True, "isinstance(memory, NaiveCopier)",
         lambda ns: isinstance(ns["memory"], NaiveCopier)),
    Case("runtime_checkable Protocol", False, "isinstance(fs, NaiveSegmenter)",
         lambda ns: isinstance(ns["fs"], NaiveSegmenter)),
    Case("abc.ABC", True, "isinstance(memory_abc, AbcCopier)",
         lambda ns: isinstance(ns["memory_abc"], AbcCopier)),
    Case("abc.ABC", False, "isinstance(fs, AbcSegmenter)",
         lambda ns: isinstance(ns["fs"], AbcSegmenter)),
    Case("flag attribute", True, "getattr(memory_flag, 'can_copy', False)",
         lambda ns: bool(getattr(ns["memory_flag"], "can_copy", False))),
    Case("flag attribute", False, "getattr(fs, 'can_copy', False)",
         lambda ns: bool(getattr(ns["fs"], "can_copy", False))),
    Case("try/except AttributeError", True, TRY_ATTR_YES,
         lambda ns: _try_attr(ns["memory"], "copy")),
    Case("try/except AttributeError", False, TRY_ATTR_NO,
         lambda ns: _try_attr(ns["fs"], "create_multipart")),
    Case("try/except NotImplementedError", False, TRY_CALL,
         lambda ns: _try_call(ns["fs_stub"])),
]  # fmt: skip


def namespace(root: str) -> dict[str, Any]:
    """Return the stores and classes the cases refer to; fs stores live under ``root``."""
    return {
        "Copier": storager.Copier,
        "Segmenter": storager.Segmenter,
        "NaiveCopier": NaiveCopier,
        "NaiveSegmenter": NaiveSegmenter,
        "AbcCopier": AbcCopier,
        "AbcSegmenter": AbcSegmenter,
        "memory": MemoryStorage(),
        "memory_abc": MemoryWithAbc(),
        "memory_flag": MemoryWithFlag(),
        "fs": FsStorage(root=os.path.join(root, "fs")),
        "fs_stub": FsWithStub(root=os.path.join(root, "stub")),
    }


def ns_per_check(stmt: str, ns: dict[str, Any], number: int, repeat: int) -> float:
    """Return the best of ``repeat`` timings of ``number`` runs of ``stmt``, in ns each."""
    timer = timeit.Timer(stmt, globals=ns)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ns per capability check, by timeit")
    parser.add_argument("--number", type=int, default=1_000_000, help="checks per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings per row (best kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="storager-bench-") as root:
        ns = namespace(root)
        for case in CASES:
            if case.check(ns) is not case.answer:
                raise AssertionError(f"{case.name} gives the wrong answer")
        loop = ns_per_check("pass", ns, args.number, args.repeat)
        print(
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; best of {args.repeat} x "
            f"{args.number:,} checks; empty loop {loop:.0f} ns (not subtracted)"
        )
        print(f"{'check':<32} {'answer':<6} {'ns/check':>9}")
        for case in CASES:
            ns_each = ns_per_check(case.stmt, ns, args.number, args.repeat)
            mark = ""
            if case.name == "storager isinstance":
                mark = "  target <= 150 ns: " + ("met" if ns_each <= TARGET_NS else "MISSED")
            answer = "yes" if case.answer else "no"
            print(f"{case.name:<32} {answer:<6} {ns_each:>9.0f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
