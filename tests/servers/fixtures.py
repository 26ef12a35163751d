"""Session-scoped pytest fixtures that start the real test servers on 127.0.0.1.

Use them from a conftest.py with either of::

    pytest_plugins = ["tests.servers.fixtures"]

    from tests.servers.fixtures import moto_server, seaweedfs_server  # noqa: F401

Each server starts lazily, the first time a test asks for its fixture, once per session, and
is stopped by its PID when the session ends. A server that cannot start fails the test with a
RuntimeError that says why; it is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.azurite import AzuriteServer, start_azurite
from tests.servers.gcs import GCSServer, start_gcs
from tests.servers.moto import MotoServer, start_moto
from tests.servers.redis import RedisCluster, RedisServer, start_redis, start_redis_cluster
from tests.servers.seaweedfs import SeaweedFSServer, start_seaweedfs
from tests.servers.sshd import SSHDServer, start_sshd

__all__ = [
    "azurite_server",
    "gcs_server",
    "moto_server",
    "redis_cluster",
    "redis_server",
    "seaweedfs_server",
    "sshd_server",
]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server, in this process."""
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[SeaweedFSServer]:
    """SeaweedFS's S3 gateway (``weed mini``), accepting any access key."""
    server = start_seaweedfs()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    """gcp-storage-emulator, in memory."""
    server = start_gcs()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """Azurite's Blob service with the development account."""
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sshd_server() -> Iterator[SSHDServer]:
    """OpenSSH sshd serving SFTP with a throwaway client key."""
    server = start_sshd()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A standalone redis-server, no password, no persistence."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-master Redis Cluster (no replicas), joined with redis-cli."""
    cluster = start_redis_cluster()
    yield cluster
    cluster.stop()
