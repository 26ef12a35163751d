"""The async conformance suite on services against their real servers (async view of each)."""

from __future__ import annotations

from typing import Any

import pytest

from storager.testing import AsyncStoragerSuite, url_factory
from tests.servers.redis import RedisServer
from tests.servers.sshd import SSHDServer
from tests.services import test_azblob, test_gcs, test_s3
from tests.services.test_sftp import sftp_url

# The session fixtures that make buckets and containers, shared with tests/services.
seaweedfs_bucket = test_s3.seaweedfs_bucket
gcs_bucket = test_gcs.gcs_bucket
gcs_url = test_gcs.gcs_url
blob_service = test_azblob.blob_service
container = test_azblob.container
azblob_url = test_azblob.azblob_url


@pytest.mark.s3
class TestAsyncS3SeaweedFS(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, request: pytest.FixtureRequest) -> Any:
        bucket: test_s3.Bucket = request.getfixturevalue("seaweedfs_bucket")
        return url_factory(bucket.url(), credential=bucket.credential)


@pytest.mark.redis
class TestAsyncRedis(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, redis_server: RedisServer) -> Any:
        return url_factory(redis_server.url())


@pytest.mark.sftp
class TestAsyncSftp(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, sshd_server: SSHDServer) -> Any:
        return url_factory(sftp_url(sshd_server))


@pytest.mark.gcs
class TestAsyncGcs(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, request: pytest.FixtureRequest) -> Any:
        return url_factory(request.getfixturevalue("gcs_url"))


@pytest.mark.azblob
class TestAsyncAzblob(AsyncStoragerSuite):
    @pytest.fixture
    def storager_factory(self, request: pytest.FixtureRequest) -> Any:
        return url_factory(request.getfixturevalue("azblob_url"))
