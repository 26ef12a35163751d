"""Two gateway instances over one Striped store (shared backends, shared manifest store)
act as one service: a write through one is read whole through the other."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storager.combinators.striped import Replicas, Striped
from storager.gateway import S3App
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import REGION, _Served

MiB = 1 << 20
CREDENTIALS = {"AKSCALE": "scale-secret"}


@pytest.fixture(scope="module")
def instances() -> Iterator[tuple[list[Any], list[S3App]]]:
    """Two apps over one Striped store, and a boto3 client of each."""
    backends = {f"b{i}": MemoryStorage() for i in range(3)}
    manifests = MemoryStorage()
    apps = [
        S3App(
            {"shared": Striped(backends, codec=Replicas(2), manifests=manifests, chunk_size=MiB)},
            credentials=CREDENTIALS,
        )
        for _ in range(2)
    ]
    served = [_Served(app, lifespan="on") for app in apps]
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
    yield clients, apps
    for s in served:
        s.stop()


@pytest.fixture
def two_gateways(instances: tuple[list[Any], list[S3App]]) -> list[Any]:
    return instances[0]


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


def _uploads(client: Any) -> list[tuple[str, str]]:
    found = client.list_multipart_uploads(Bucket="shared").get("Uploads", [])
    return [(u["Key"], u["UploadId"]) for u in found]


def test_each_instance_lists_the_uploads_the_other_started(two_gateways: list[Any]) -> None:
    one, two = two_gateways
    first = one.create_multipart_upload(Bucket="shared", Key="up/a.bin")["UploadId"]
    second = two.create_multipart_upload(Bucket="shared", Key="up/b.bin")["UploadId"]
    both = [("up/a.bin", first), ("up/b.bin", second)]
    assert _uploads(one) == both
    assert _uploads(two) == both
    two.abort_multipart_upload(Bucket="shared", Key="up/a.bin", UploadId=first)
    assert _uploads(one) == [("up/b.bin", second)]
    etag = one.upload_part(
        Bucket="shared", Key="up/b.bin", UploadId=second, PartNumber=1, Body=b"z"
    )["ETag"]
    one.complete_multipart_upload(
        Bucket="shared",
        Key="up/b.bin",
        UploadId=second,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert _uploads(one) == _uploads(two) == []
    assert two.get_object(Bucket="shared", Key="up/b.bin")["Body"].read() == b"z"
    keys = [o["Key"] for o in two.list_objects_v2(Bucket="shared")["Contents"]]
    assert "up/b.bin" in keys
    assert not [key for key in keys if key.startswith(".storager")]
    two.delete_object(Bucket="shared", Key="up/b.bin")


def test_an_instance_sweeps_the_expired_uploads_of_another(
    instances: tuple[list[Any], list[S3App]],
) -> None:
    (one, _), (_, other_app) = instances
    upload = one.create_multipart_upload(Bucket="shared", Key="old.bin")["UploadId"]
    later = datetime.now(UTC) + other_app.upload_max_age + timedelta(seconds=1)
    assert asyncio.run(other_app.sweep_uploads(now=later)) == 1
    assert _uploads(one) == []
    with pytest.raises(ClientError, match="NoSuchUpload"):
        one.list_parts(Bucket="shared", Key="old.bin", UploadId=upload)
