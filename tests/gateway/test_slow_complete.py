"""A Complete that takes long answers 200 at once and keeps the connection alive with
spaces; its result (or its error) follows in that answer, and boto3 reads either."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storager._object import Multipart, Object, Part
from storager.gateway import S3App, _multipart
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import REGION, _Served

MiB = 1 << 20


class SlowComplete(MemoryStorage):
    """A memory store whose multipart completion takes a while."""

    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        time.sleep(0.6)
        return super().complete_multipart(multipart, parts, **pairs)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(_multipart, "KEEP_ALIVE", 0.1)
    store = SlowComplete()
    served = _Served(S3App({"slow": store}, credentials={"AKSLOW": "slow-secret"}), lifespan="on")
    yield (
        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{served.port}",
            aws_access_key_id="AKSLOW",
            aws_secret_access_key="slow-secret",
            region_name=REGION,
            config=Config(retries={"max_attempts": 1}),
        ),
        store,
    )
    served.stop()


def test_slow_complete_keeps_alive_and_succeeds(slow: Any) -> None:
    s3, store = slow
    upload = s3.create_multipart_upload(Bucket="slow", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="slow", Key="k", UploadId=upload, PartNumber=1, Body=b"abc")[
        "ETag"
    ]
    answer = s3.complete_multipart_upload(
        Bucket="slow",
        Key="k",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert answer["Key"] == "k"
    assert store.read("k") == b"abc"


def test_slow_complete_error_arrives_in_the_200_answer(slow: Any, monkeypatch: Any) -> None:
    s3, store = slow

    def fails(self: Any, multipart: Multipart, parts: Sequence[Part], **pairs: Any) -> Object:
        time.sleep(0.6)
        raise_part = _multipart.S3Error("InvalidPart", "a part went missing")
        raise raise_part

    monkeypatch.setattr(SlowComplete, "complete_multipart", fails)
    upload = s3.create_multipart_upload(Bucket="slow", Key="e")["UploadId"]
    etag = s3.upload_part(Bucket="slow", Key="e", UploadId=upload, PartNumber=1, Body=b"abc")[
        "ETag"
    ]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="slow",
            Key="e",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
    assert exc.value.response["Error"]["Code"] == "InvalidPart"
    # Nothing visible; the upload stays open (as on S3), noted under the reserved prefix.
    stored = [o.path for o in store.list("", list_mode="prefix")]
    assert len(stored) == 1
    assert stored[0].startswith(f".storager-uploads/notes/{upload}.")
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="slow")["Uploads"]] == [upload]
