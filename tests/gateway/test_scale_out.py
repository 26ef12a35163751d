"""Two gateway instances over one Striped store (shared backends, shared manifest store)
act as one service: a write through one is read whole through the other."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from storager.combinators.striped import Replicas, Striped
from storager.gateway import S3App
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import REGION, _Served

MiB = 1 << 20
CREDENTIALS = {"AKSCALE": "scale-secret"}


@pytest.fixture(scope="module")
def two_gateways() -> Iterator[list[Any]]:
    backends = {f"b{i}": MemoryStorage() for i in range(3)}
    manifests = MemoryStorage()
    served = []
    for _ in range(2):
        store = Striped(backends, codec=Replicas(2), manifests=manifests, chunk_size=1 * MiB)
        served.append(_Served(S3App({"shared": store}, credentials=CREDENTIALS), lifespan="on"))
    clients = [
        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s.port}",
            aws_access_key_id="AKSCALE",
            aws_secret_access_key="scale-secret",
            region_name=REGION,
            config=Config(retries={"max_attempts": 1}),
        )
        for s in served
    ]
    yield clients
    for s in served:
        s.stop()


def test_write_through_one_read_whole_through_the_other(two_gateways: list[Any]) -> None:
    one, two = two_gateways
    data = os.urandom(3 * MiB + 17)
    one.put_object(Bucket="shared", Key="x.bin", Body=data)
    assert two.get_object(Bucket="shared", Key="x.bin")["Body"].read() == data
    assert [o["Key"] for o in two.list_objects_v2(Bucket="shared")["Contents"]] == ["x.bin"]
    two.delete_object(Bucket="shared", Key="x.bin")
    assert one.list_objects_v2(Bucket="shared")["KeyCount"] == 0


def test_multipart_started_on_one_completed_on_the_other(two_gateways: list[Any]) -> None:
    one, two = two_gateways
    upload = one.create_multipart_upload(Bucket="shared", Key="mp.bin")["UploadId"]
    first = two.upload_part(
        Bucket="shared", Key="mp.bin", UploadId=upload, PartNumber=1, Body=b"a" * (5 * MiB)
    )["ETag"]
    second = one.upload_part(
        Bucket="shared", Key="mp.bin", UploadId=upload, PartNumber=2, Body=b"b"
    )["ETag"]
    two.complete_multipart_upload(
        Bucket="shared",
        Key="mp.bin",
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}]
        },
    )
    assert one.get_object(Bucket="shared", Key="mp.bin")["Body"].read() == b"a" * (5 * MiB) + b"b"


def test_concurrent_writers_through_both_leave_one_whole_version(
    two_gateways: list[Any],
) -> None:
    versions = [bytes([i]) * (2 * MiB) for i in range(6)]
    threads = [
        threading.Thread(
            target=two_gateways[i % 2].put_object,
            kwargs={"Bucket": "shared", "Key": "race.bin", "Body": data},
        )
        for i, data in enumerate(versions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = {gw.get_object(Bucket="shared", Key="race.bin")["Body"].read() for gw in two_gateways}
    assert len(seen) == 1
    assert seen.pop() in versions
