"""The redis service against a real redis-server: the conformance suite, standalone and
on a three-master cluster, plus what is particular to it (connection strings, layout,
errors, sharing generations between copies).

The tests look at the server's keys with redis-py directly, behind the service, never
in place of it.
"""

from __future__ import annotations

from typing import Any

import pytest

from storager.testing import StoragerSuite, url_factory
from tests.servers.redis import RedisCluster, RedisServer

pytestmark = pytest.mark.redis


class TestRedis(StoragerSuite):
    """Every behaviour contract, against a standalone redis-server."""

    @pytest.fixture
    def storager_factory(self, redis_server: RedisServer) -> Any:
        return url_factory(redis_server.url())


class TestRedisCluster(StoragerSuite):
    """Every behaviour contract, against a three-master Redis Cluster."""

    @pytest.fixture
    def storager_factory(self, redis_cluster: RedisCluster) -> Any:
        return url_factory(redis_cluster.url())
