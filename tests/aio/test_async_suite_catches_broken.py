"""The async conformance suite fails on async stores that break a contract."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

BROKEN = '''
from typing import Any

import pytest

from storager.aio import async_view
from storager.services.memory import MemoryStorage
from storager.testing import AsyncStoragerSuite

View = type(async_view(MemoryStorage()))


class RangeIgnored(View):
    """read ignores offset and size (a sync contract, checked through the async store)."""

    async def read(self, path: str, **pairs: Any) -> bytes:
        pairs.pop("offset", None)
        pairs.pop("size", None)
        return await super().read(path, **pairs)


class AsyncDataTruncated(View):
    """write keeps only the first chunk of an async iterable."""

    async def write(self, path: str, data: Any, **pairs: Any) -> Any:
        if hasattr(data, "__aiter__"):
            data = [await anext(aiter(data))]
        return await super().write(path, data, **pairs)


class Base(AsyncStoragerSuite):
    broken: Any = None

    @pytest.fixture
    def storager_factory(self):
        return lambda work_dir, **pairs: MemoryStorage(work_dir=work_dir, **pairs)

    def to_async(self, store):
        return self.broken(store, inline=True)


class TestRangeIgnored(Base):
    broken = RangeIgnored


class TestAsyncDataTruncated(Base):
    broken = AsyncDataTruncated


class TestGood(Base):
    broken = View
'''


@pytest.mark.parametrize(
    ("suite", "test"),
    [
        ("TestRangeIgnored", "test_read_offset_and_size"),
        ("TestAsyncDataTruncated", "test_write_accepts_async_iterables"),
    ],
)
def test_the_async_suite_fails_a_broken_async_store(
    pytester: pytest.Pytester, suite: str, test: str
) -> None:
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-k", f"{suite} and {test}"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()
    good = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "-k", f"TestGood and {test}"
    )
    outcomes = good.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1 and "failed" not in outcomes, good.stdout.str()
