"""storager's own s3 service runs the whole conformance suite through the gateway:
storager -> s3 -> gateway -> a memory store, and -> a Striped store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import storager
from storager.testing import StoragerSuite, url_factory
from tests.gateway.conftest import ACCESS_KEY, REGION, SECRET_KEY, Gateway


def _factory(gateway: Gateway, bucket: str) -> Callable[..., storager.Storager]:
    url = f"s3://{bucket}/?endpoint={gateway.endpoint}&location={REGION}"
    return url_factory(url, credential=f"hmac:{ACCESS_KEY}:{SECRET_KEY}")


class TestThroughGatewayMemory(StoragerSuite):
    # The gateway and its memory store run in this process: tracemalloc would count the
    # server's copies as the client's.
    write_memory_limit = None

    @pytest.fixture
    def storager_factory(self, gateway: Gateway) -> Callable[..., storager.Storager]:
        return _factory(gateway, "mem")


class TestThroughGatewayStriped(StoragerSuite):
    write_memory_limit = None

    # Striped has no directories, so the gateway refuses keys ending in "/" over it
    # (NotImplemented) instead of storing a marker Striped could not list as one.
    def test_create_dir_makes_a_directory(self, store: Any) -> None:
        pytest.skip("Striped is not a Direr: the gateway cannot keep directory markers on it")

    def test_read_directory_raises(self, store: Any) -> None:
        pytest.skip("Striped is not a Direr: the gateway cannot keep directory markers on it")

    @pytest.fixture
    def storager_factory(self, gateway: Gateway) -> Callable[..., storager.Storager]:
        return _factory(gateway, "striped")
