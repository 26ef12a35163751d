"""fsspec's abstract suite (copy, get, put, open, pipe) over gcs, azblob, sftp and redis.

The same 136 cases as test_abstract.py runs over memory, fs, s3 and the combinators, here
on the other services' real servers: 544 cases, about 4.5 minutes on this machine, most of
it on the GCS emulator.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

import storager
from storager.fsspec import StoragerFileSystem
from storager.testing import url_factory
from tests.servers.redis import RedisServer
from tests.servers.sshd import SSHDServer
from tests.services import test_azblob, test_gcs
from tests.services.test_sftp import sftp_url

# The session fixtures that make buckets and containers, shared with tests/services.
gcs_bucket = test_gcs.gcs_bucket
gcs_url = test_gcs.gcs_url
blob_service = test_azblob.blob_service
container = test_azblob.container
azblob_url = test_azblob.azblob_url


class _Suite(
    AbstractCopyTests,
    AbstractGetTests,
    AbstractPutTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractFixtures,
):
    """A subclass gives ``base_url``; each test gets a store in a fresh work_dir."""

    @pytest.fixture
    def base_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def fs(self, base_url: str) -> Iterator[StoragerFileSystem]:
        store: storager.Storager = url_factory(base_url)(f"/fsspec-{secrets.token_hex(4)}/")
        with store:
            yield StoragerFileSystem(store)

    @pytest.fixture
    def fs_path(self) -> str:
        return "t"

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join


@pytest.mark.gcs
class TestAbstractGcs(_Suite):
    @pytest.fixture
    def base_url(self, request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue("gcs_url")


@pytest.mark.azblob
class TestAbstractAzblob(_Suite):
    @pytest.fixture
    def base_url(self, request: pytest.FixtureRequest) -> Any:
        return request.getfixturevalue("azblob_url")


@pytest.mark.sftp
class TestAbstractSftp(_Suite):
    @pytest.fixture
    def base_url(self, sshd_server: SSHDServer) -> str:
        return sftp_url(sshd_server)


@pytest.mark.redis
class TestAbstractRedis(_Suite):
    @pytest.fixture
    def base_url(self, redis_server: RedisServer) -> str:
        return redis_server.url()
