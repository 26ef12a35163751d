"""The conformance suite against ``--storager-url``; the plugin adds this file to the run."""

from __future__ import annotations

import pytest

from storager.testing._url import UrlFactory, url_factory
from storager.testing.plugin import PAIRS_KEY
from storager.testing.suite import StoragerSuite


@pytest.fixture(scope="session")
def _storager_url_factory(pytestconfig: pytest.Config) -> UrlFactory:
    url = pytestconfig.getoption("storager_url")
    if not url:
        pytest.skip("no --storager-url given")
    return url_factory(url, **pytestconfig.stash.get(PAIRS_KEY, {}))


class TestStoragerUrl(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, _storager_url_factory: UrlFactory) -> UrlFactory:
        return _storager_url_factory
