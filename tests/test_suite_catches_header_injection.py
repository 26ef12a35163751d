"""The suite's header-injection contract fails on stores that break it, passes on good ones.

Each broken store is a MemoryStorage that breaks the contract one way; the suite's
``test_header_pairs_refuse_control_characters_and_write_nothing`` runs on it in an inner
pytest session and must fail, and pass on MemoryStorage itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from storager import Object, PairInvalidError, Storager
from storager.services.memory import MemoryStorage

pytest_plugins = ["pytester"]

_TEST = "test_header_pairs_refuse_control_characters_and_write_nothing"
_WRITE_PAIRS = (
    "content_md5",
    "content_type",
    "if_match",
    "if_none_match",
    "io_callback",
    "size",
    "user_metadata",
)


class HeaderPairsUnchecked(MemoryStorage):
    """write hands header-bound pairs to the service unchecked (a backend without the check)."""

    def write(self, path: str, data: Any, **pairs: Any) -> Object:
        given = {name: pairs.get(name) for name in _WRITE_PAIRS}
        return self._write(self._abs_path("write", path), data, **given)


class RefusedAfterWriting(MemoryStorage):
    """write refuses a bad header pair only after the bytes landed."""

    def write(self, path: str, data: Any, **pairs: Any) -> Object:
        try:
            return super().write(path, data, **pairs)
        except PairInvalidError:
            super().write(path, data)
            raise


class MessageEchoesValue(MemoryStorage):
    """write refuses a bad header pair, but its message carries the raw value."""

    def write(self, path: str, data: Any, **pairs: Any) -> Object:
        try:
            return super().write(path, data, **pairs)
        except PairInvalidError as exc:
            raw = " ".join(str(v) for v in pairs.values())
            raise PairInvalidError("write", "memory", path, f"{exc.reason} {raw}") from None


def make_factory(cls: type[Storager]) -> Callable[..., Storager]:
    """Return a suite factory for the MemoryStorage subclass ``cls``."""

    def factory(work_dir: str, **pairs: Any) -> Storager:
        return cls(work_dir=work_dir, **pairs)  # type: ignore[call-arg]

    return factory


_SUITE_FILE = """
import pytest
from storager.services.memory import MemoryStorage
from storager.testing import StoragerSuite
from tests.test_suite_catches_header_injection import make_factory, {broken}


class TestBroken(StoragerSuite):
    @pytest.fixture
    def storager_factory(self):
        return make_factory({broken})


class TestGood(StoragerSuite):
    @pytest.fixture
    def storager_factory(self):
        return make_factory(MemoryStorage)
"""


@pytest.mark.parametrize("broken", [HeaderPairsUnchecked, RefusedAfterWriting, MessageEchoesValue])
def test_header_contract_fails_on_a_broken_store(
    pytester: pytest.Pytester, broken: type[Storager]
) -> None:
    pytester.makepyfile(test_broken_store=_SUITE_FILE.format(broken=broken.__name__))
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-k", _TEST)
    outcomes: dict[str, set[str]] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        _, cls, _name = report.nodeid.split("::")
        if report.when == "call" or report.outcome != "passed":
            outcomes.setdefault(cls, set()).add(report.outcome)
    assert outcomes.get("TestBroken") == {"failed"}, f"{broken.__name__}: {outcomes}"
    assert outcomes.get("TestGood") == {"passed"}, outcomes
