"""The conformance suite and test doubles, shipped for backend authors.

A backend's own test file is a few lines::

    from storager.testing import StoragerSuite, url_factory

    class TestMyStore(StoragerSuite):
        @pytest.fixture
        def storager_factory(self):
            return url_factory("mystore://bucket/?endpoint=http://127.0.0.1:9000")

or, without writing a file: ``pytest --storager-url "mystore://bucket/..."``.

``StoragerSuite`` needs pytest, so it is imported on first use; importing this package
does not import pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storager.testing._url import url_factory
from storager.testing.faulty import Fault, FaultyStorager

if TYPE_CHECKING:
    from storager.testing._async_suite import AsyncStoragerSuite
    from storager.testing.suite import StoragerSuite, covers

__all__ = [
    "AsyncStoragerSuite",
    "Fault",
    "FaultyStorager",
    "StoragerSuite",
    "covers",
    "url_factory",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncStoragerSuite":
        from storager.testing import _async_suite

        return _async_suite.AsyncStoragerSuite
    if name in ("StoragerSuite", "covers"):
        from storager.testing import suite

        return getattr(suite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
