"""The native async s3 store (``services/s3/_async``) against moto and SeaweedFS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import storager
from storager.aio import async_view
from storager.services.s3 import S3Storage
from storager.services.s3._async import S3Async
from storager.testing import AsyncStoragerSuite, url_factory
from tests.services import test_s3

moto_bucket = test_s3.moto_bucket
seaweedfs_bucket = test_s3.seaweedfs_bucket

pytestmark = pytest.mark.s3


@pytest.fixture(params=["moto", "seaweedfs"])
def bucket(request: pytest.FixtureRequest) -> test_s3.Bucket:
    return request.getfixturevalue(f"{request.param}_bucket")  # type: ignore[no-any-return]


@pytest.fixture
def store(bucket: test_s3.Bucket, request: pytest.FixtureRequest) -> Iterator[S3Async]:
    sync = bucket.open(f"native-{request.node.name[-40:]}-{id(request)}/")
    native = async_view(sync)
    assert isinstance(native, S3Async)
    try:
        yield native
    finally:
        for obj in sync.list("", list_mode="prefix"):
            sync.delete(obj.path)
        asyncio.run(native.close())


class TestAsyncS3NativeMoto(AsyncStoragerSuite):
    # moto keeps objects in this process's memory: the client's bound is checked on
    # SeaweedFS (tests/aio/test_async_services.py runs the suite there, natively).
    write_memory_limit = None

    def test_write_multipart_unknown_upload_raises_not_found(self, store: Any) -> None:
        pytest.skip("moto answers UploadPart for an unknown upload id with HTTP 500")

    @pytest.fixture
    def storager_factory(self, moto_bucket: test_s3.Bucket) -> Any:
        return url_factory(moto_bucket.url(), credential=moto_bucket.credential)


def test_smoke(store: S3Async) -> None:
    async def run() -> bytes:
        await store.write("a", b"hi")
        return await store.read("a")

    assert asyncio.run(run()) == b"hi"
