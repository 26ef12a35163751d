"""Typed pairs: on a service class a misspelt or mistyped pair is a mypy error.

The sample below is checked by mypy (``mypy.api.run``, ``--strict``). Every line that
must fail carries ``# error: <part of mypy's message>``; every other line must pass, so
one run proves both that the wrong calls are caught and that the right ones are not.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

from storager import AsyncStorager, Object, PairUnsupportedError, StorageMeta, Storager
from storager.services import BUILTIN
from storager.services.memory import MemoryStorage

SAMPLE = """
from __future__ import annotations

from typing import Any

import storager
from storager import Storager
from storager.combinators import Mirror, Retry
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage


def through_the_protocol(store: Storager) -> None:
    # The protocol stays open: which pairs are valid depends on the service at run time.
    store.write("k", b"x", any_pair="passes the type checker")


with storager.open("memory://") as store:
    store.write("a.txt", b"hi", content_type="text/plain")
    through_the_protocol(store)

with MemoryStorage(default_content_type="text/plain") as memory:
    memory.write("a.txt", b"hi", content_type="text/plain", size=2, user_metadata={"k": "v"})
    memory.read("a.txt", offset=0, size=1, io_callback=print)
    for obj in memory.list("", list_mode="prefix"):
        print(obj.path)
    through_the_protocol(memory)
    wrapped: Storager = Retry(memory)
    Mirror({"a": memory, "b": wrapped}, write="parallel", read="race", rollback="delete")
    Mirror({"a": memory}, write="paralel")  # error: type "Literal['paralel']"
    memory.write("a.txt", b"hi", content_typ="text/x")  # error: argument "content_typ" for "write"
    memory.read("a.txt", offset="1")  # error: incompatible type "str"; expected "int | None"
    memory.list("", list_mode="prefx")  # error: type "Literal['prefx']"
    memory.stat("a.txt", offset=1)  # error: argument "offset" for "stat"
    memory.write("a", b"", storage_class="X")  # error: argument "storage_class" for "write"

vendor_pairs: dict[str, Any] = {"x_vendor": "1"}
MemoryStorage(loose_pairs=True).write("a.txt", b"hi", **vendor_pairs)
FsStorage(root="/tmp", default_sync=True).write("a.txt", b"hi", sync=False)
FsStorage(rot="/tmp")  # error: argument "rot" for "FsStorage"
FsStorage(root=1)  # error: Argument "root" to "FsStorage" has incompatible type "int"


async def main() -> None:
    async with storager.open_async("memory://") as astore:
        await astore.write("a.txt", b"hi", content_type="text/plain")
"""

_MARK = re.compile(r"# error: (.+)$")
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.+)$")


def _expected(sample: str) -> dict[int, str]:
    """Return the line numbers that must fail, with a part of the message each."""
    found = {}
    for number, line in enumerate(sample.splitlines(), start=1):
        mark = _MARK.search(line)
        if mark:
            found[number] = mark.group(1).strip()
    return found


def _mypy_errors(path: Path, cache: Path) -> dict[int, list[str]]:
    """Run mypy --strict on ``path``; return its errors in that file by line.

    mypy runs in this process and raises the recursion limit and the gc thresholds for
    itself; both are put back, so tests that rely on the defaults (deep fs roots) keep
    them.
    """
    limit, thresholds = sys.getrecursionlimit(), gc.get_threshold()
    threads = set(threading.enumerate())
    try:
        stdout, stderr, _ = mypy_api.run(
            ["--strict", "--cache-dir", str(cache), "--no-error-summary", str(path)]
        )
    finally:
        sys.setrecursionlimit(limit)
        gc.set_threshold(*thresholds)
    assert set(threading.enumerate()) <= threads, "mypy left a thread behind"
    assert stderr == "", stderr
    errors: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        match = _ERROR.match(line)
        # Errors elsewhere (a followed import) are not what this test is about.
        if match and Path(match["file"]).resolve() == path.resolve():
            errors.setdefault(int(match["line"]), []).append(match["message"])
    return errors


@pytest.fixture(scope="module")
def sample_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[str]]:
    root = tmp_path_factory.mktemp("typed_pairs")
    sample = root / "sample.py"
    sample.write_text(SAMPLE, encoding="utf-8")
    return _mypy_errors(sample, root / "mypy_cache")


def test_the_sample_marks_the_cases_it_claims() -> None:
    expected = _expected(SAMPLE).values()
    assert len(expected) == 8
    assert any("content_typ" in e for e in expected)  # misspelt
    assert any('incompatible type "str"' in e for e in expected)  # mistyped
    assert any("Literal['prefx']" in e for e in expected)  # outside a Literal


@pytest.mark.parametrize(("line", "fragment"), sorted(_expected(SAMPLE).items()))
def test_mypy_reports_each_wrong_pair(
    sample_errors: dict[int, list[str]], line: int, fragment: str
) -> None:
    messages = sample_errors.get(line, [])
    assert any(fragment in m for m in messages), (line, messages)


def test_mypy_passes_every_right_call(sample_errors: dict[int, list[str]]) -> None:
    unexpected = {n: m for n, m in sample_errors.items() if n not in _expected(SAMPLE)}
    assert unexpected == {}


@pytest.mark.parametrize("scheme", sorted(BUILTIN))
def test_each_operation_names_exactly_the_pairs_its_capability_lists(scheme: str) -> None:
    module, name = BUILTIN[scheme]
    cls = getattr(__import__(module, fromlist=[name]), name)
    for op, accepted in cls.capability.operations.items():
        params = inspect.signature(getattr(cls, op)).parameters.values()
        named = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert named == accepted, op


def test_a_loose_store_ignores_a_misspelt_pair_at_run_time() -> None:
    pairs: dict[str, Any] = {"content_typ": "text/plain"}
    with MemoryStorage(loose_pairs=True) as loose:
        loose.write("a.txt", b"hi", **pairs)
        assert loose.read("a.txt") == b"hi"
    with MemoryStorage() as strict, pytest.raises(PairUnsupportedError, match="content_typ"):
        strict.write("a.txt", b"hi", **pairs)


class _Minimal(Storager):
    """A store that inherits the protocol's ``with`` support and records ``close``."""

    closed = 0

    def metadata(self) -> StorageMeta:
        raise NotImplementedError

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        raise NotImplementedError

    def close(self) -> None:
        self.closed += 1


def test_with_on_any_storager_returns_it_and_closes_it_once() -> None:
    store = _Minimal()
    with store as entered:
        assert entered is store
        assert store.closed == 0
    assert store.closed == 1


class _MinimalAsync(AsyncStorager):
    """An async store that inherits the protocol's ``async with`` support."""

    closed = 0

    def metadata(self) -> StorageMeta:
        raise NotImplementedError

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        raise NotImplementedError

    async def close(self) -> None:
        self.closed += 1


def test_async_with_on_any_async_storager_returns_it_and_closes_it_once() -> None:
    store = _MinimalAsync()

    async def main() -> None:
        async with store as entered:
            assert entered is store
            assert store.closed == 0

    asyncio.run(main())
    assert store.closed == 1
