"""An upload id is the client's word: a crafted one names no folder outside the uploads.

Over a store without multipart (fs), the gateway keeps each upload's parts in a folder
named by its id; an id such as ``..`` once turned AbortMultipartUpload into a delete of
the whole bucket. Every multipart call with an id the gateway did not make answers
NoSuchUpload and leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storager.gateway import S3App
from storager.services.fs import FsStorage
from tests.gateway.conftest import REGION, _Served

CRAFTED = ["..", "../", "x/../..", "notes", "../important", "A" * 32, "0" * 31]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Any, FsStorage]]:
    store = FsStorage(root=str(tmp_path))
    store.write("important/data.bin", b"precious")
    server = _Served(S3App({"b": store}, credentials={"AK": "SK"}), lifespan="on")
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{server.port}",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}),
    )
    try:
        yield client, store
    finally:
        server.stop()
        store.close()


def _paths(store: FsStorage) -> list[str]:
    return sorted(obj.path for obj in store.list("", list_mode="prefix"))


@pytest.mark.parametrize("upload_id", CRAFTED)
def test_a_crafted_upload_id_is_no_upload_and_touches_nothing(
    served: tuple[Any, FsStorage], upload_id: str
) -> None:
    client, store = served
    client.put_object(Bucket="b", Key="other.txt", Body=b"x")
    good = client.create_multipart_upload(Bucket="b", Key="k")["UploadId"]
    client.upload_part(Bucket="b", Key="k", UploadId=good, PartNumber=1, Body=b"part one")
    before = _paths(store)
    calls = [
        lambda: client.abort_multipart_upload(Bucket="b", Key="k", UploadId=upload_id),
        lambda: client.list_parts(Bucket="b", Key="k", UploadId=upload_id),
        lambda: client.upload_part(
            Bucket="b", Key="k", UploadId=upload_id, PartNumber=1, Body=b"y"
        ),
        lambda: client.complete_multipart_upload(
            Bucket="b",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]},
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "NoSuchUpload"
    assert _paths(store) == before
    assert store.read("important/data.bin") == b"precious"
    # The real upload is still whole and completes.
    parts = client.list_parts(Bucket="b", Key="k", UploadId=good)["Parts"]
    client.complete_multipart_upload(
        Bucket="b",
        Key="k",
        UploadId=good,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": parts[0]["ETag"]}]},
    )
    assert store.read("k") == b"part one"


def test_aborting_an_unknown_upload_of_the_right_form_is_no_such_upload(
    served: tuple[Any, FsStorage],
) -> None:
    client, store = served
    before = _paths(store)
    with pytest.raises(ClientError) as info:
        client.abort_multipart_upload(Bucket="b", Key="k", UploadId="0" * 32)
    assert info.value.response["Error"]["Code"] == "NoSuchUpload"
    assert _paths(store) == before
