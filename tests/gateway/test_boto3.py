"""boto3 against the gateway: every operation real clients use, over HTTP and HTTPS
(where botocore sends its aws-chunked trailer form), on each kind of store."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.gateway.conftest import Gateway

MiB = 1 << 20
BUCKETS = ["mem", "striped", "files"]


@pytest.fixture(params=[False, True], ids=["http", "https"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(params=BUCKETS)
def bucket(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_put_get_head_range_delete(gateway: Gateway, bucket: str, tls: bool, prefix: str) -> None:
    s3 = gateway.client(tls=tls)
    key = prefix + "dir/hello.txt"
    data = os.urandom(100_000)
    put = s3.put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="text/plain", Metadata={"colour": "blue"}
    )
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    if bucket == "mem":  # the stores that keep content types and metadata
        assert head["ContentType"] == "text/plain"
        assert head["Metadata"] == {"colour": "blue"}
    ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == data[10:20]
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")["Body"].read() == data[-5:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(data)}-")
    assert _code(exc) == "InvalidRange"
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert _code(exc) == "NoSuchKey"


def test_conditional_get(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    key = prefix + "cond"
    etag = s3.put_object(Bucket="mem", Key=key, Body=b"abc")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="mem", Key=key, IfMatch='"nope"')
    assert _code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="mem", Key=key, IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert s3.get_object(Bucket="mem", Key=key, IfMatch=etag)["Body"].read() == b"abc"


def _keys(pages: Any, field: str = "Contents") -> list[str]:
    return [item["Key"] for page in pages for item in page.get(field, [])]


def test_list_v1_v2_with_delimiters_and_paging_past_1000(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    store = gateway.stores["mem"]
    names = [f"{prefix}many/{i:05d}" for i in range(1203)]
    for name in names:  # straight into the store: the listing is what is tested
        store.write(name, b"x")
    store.write(prefix + "top.txt", b"x")
    store.write(prefix + "sub/a", b"x")
    v2 = s3.get_paginator("list_objects_v2").paginate(Bucket="mem", Prefix=prefix + "many/")
    pages = list(v2)
    assert len(pages) == 2
    assert _keys(pages) == names
    v1 = s3.get_paginator("list_objects").paginate(Bucket="mem", Prefix=prefix + "many/")
    assert _keys(v1) == names
    top = s3.list_objects_v2(Bucket="mem", Prefix=prefix, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [prefix + "many/", prefix + "sub/"]
    assert [o["Key"] for o in top["Contents"]] == [prefix + "top.txt"]
    paged = s3.get_paginator("list_objects").paginate(
        Bucket="mem", Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1}
    )
    seen = []
    for page in paged:
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == [prefix + "many/", prefix + "sub/", prefix + "top.txt"]
    after = s3.list_objects_v2(Bucket="mem", Prefix=prefix + "many/", StartAfter=names[1200])
    assert [o["Key"] for o in after["Contents"]] == names[1201:]
    versions = s3.list_object_versions(Bucket="mem", Prefix=prefix + "sub/")
    assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [
        (prefix + "sub/a", "null")
    ]


def test_list_encoding_type_url(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    key = prefix + "a b+c%d&é"
    s3.put_object(Bucket="mem", Key=key, Body=b"1")
    listed = s3.list_objects_v2(Bucket="mem", Prefix=prefix)  # botocore asks for url
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert s3.get_object(Bucket="mem", Key=key)["Body"].read() == b"1"


def test_copy_and_multi_delete(gateway: Gateway, bucket: str, prefix: str) -> None:
    s3 = gateway.client()
    s3.put_object(Bucket=bucket, Key=prefix + "src", Body=b"copied bytes")
    s3.copy_object(Bucket=bucket, Key=prefix + "dst", CopySource=f"{bucket}/{prefix}src")
    assert s3.get_object(Bucket=bucket, Key=prefix + "dst")["Body"].read() == b"copied bytes"
    s3.copy_object(Bucket="mem", Key=prefix + "across", CopySource=f"{bucket}/{prefix}src")
    assert s3.get_object(Bucket="mem", Key=prefix + "across")["Body"].read() == b"copied bytes"
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": prefix + "src"}, {"Key": prefix + "dst"}, {"Key": "../x"}]},
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == [prefix + "dst", prefix + "src"]
    assert [e["Key"] for e in answer["Errors"]] == ["../x"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "s")


def test_multipart_upload_of_20_mib(gateway: Gateway, bucket: str, tls: bool, prefix: str) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = gateway.client(tls=tls)
    data = os.urandom(21 * MiB)
    path = os.path.join(gateway.ca_file + f".{bucket}.{tls}.bin")
    with open(path, "wb") as f:
        f.write(data)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_file(path, bucket, prefix + "big.bin", Config=config)
    os.remove(path)
    head = s3.head_object(Bucket=bucket, Key=prefix + "big.bin")
    assert head["ContentLength"] == len(data)
    body = s3.get_object(Bucket=bucket, Key=prefix + "big.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []) == []


def test_multipart_parts_listing_copy_and_abort(gateway: Gateway, bucket: str, prefix: str) -> None:
    s3 = gateway.client()
    key = prefix + "mp"
    s3.put_object(Bucket=bucket, Key=prefix + "source", Body=b"s" * (5 * MiB))
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, upload)]
    one = s3.upload_part_copy(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        PartNumber=1,
        CopySource=f"{bucket}/{prefix}source",
    )["CopyPartResult"]["ETag"]
    two = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=2, Body=b"tail")[
        "ETag"
    ]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"bad"'}]},
        )
    assert _code(exc) == "InvalidPart"
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": one}, {"PartNumber": 2, "ETag": two}]},
    )
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"s" * (5 * MiB) + b"tail"
    aborted = s3.create_multipart_upload(Bucket=bucket, Key=prefix + "gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key=prefix + "gone", UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key=prefix + "gone", UploadId=aborted)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key=prefix + "gone", UploadId=aborted)
    assert _code(exc) == "NoSuchUpload"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "gone")


def test_small_parts_but_the_last_are_refused(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    key = prefix + "small"
    upload = s3.create_multipart_upload(Bucket="mem", Key=key)["UploadId"]
    tags = [
        s3.upload_part(Bucket="mem", Key=key, UploadId=upload, PartNumber=n, Body=b"x")["ETag"]
        for n in (1, 2)
    ]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket="mem",
            Key=key,
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": n + 1, "ETag": t} for n, t in enumerate(tags)]
            },
        )
    assert _code(exc) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket="mem", Key=key, UploadId=upload)


@pytest.mark.parametrize("signature_version", ["s3v4", None], ids=["v4", "default"])
def test_presigned_get_and_put(
    gateway: Gateway, prefix: str, signature_version: str | None
) -> None:
    config = {"signature_version": signature_version} if signature_version else {}
    s3 = gateway.client(**config)
    key = prefix + "presigned.bin"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "mem", "Key": key}, ExpiresIn=60
    )
    # An empty Content-Type: the old form signs it, and urllib would send a form type.
    request = urllib.request.Request(
        put_url, data=b"\x00signed\xff", method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "mem", "Key": key}, ExpiresIn=60
    )
    with urllib.request.urlopen(get_url, timeout=30) as response:
        assert response.read() == b"\x00signed\xff"
    tampered = get_url.replace(key, prefix + "other.bin")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(tampered, timeout=30)
    assert exc.value.code == 403


def test_buckets(gateway: Gateway) -> None:
    s3 = gateway.client()
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["mem", "striped", "files"]
    s3.head_bucket(Bucket="mem")
    s3.create_bucket(Bucket="mem")  # already served: fine, as for its owner on us-east-1
    assert s3.get_bucket_location(Bucket="mem").get("LocationConstraint") is None
    assert "Status" not in s3.get_bucket_versioning(Bucket="mem")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="nope")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="mem")
    assert _code(exc) == "BucketNotEmpty" or s3.list_objects_v2(Bucket="mem")["KeyCount"] == 0


def test_https_puts_arrive_in_the_trailer_form_and_are_stored_decoded(
    gateway: Gateway, prefix: str
) -> None:
    s3 = gateway.client(tls=True)
    key = prefix + "trailer.bin"
    s3.put_object(Bucket="mem", Key=key, Body=b"framed?" * 1000)
    assert gateway.extra["recorder"].payloads[f"/mem/{key}"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert gateway.stores["mem"].read(key) == b"framed?" * 1000


def test_copy_keeps_or_replaces_metadata(gateway: Gateway, prefix: str) -> None:
    s3 = gateway.client()
    s3.put_object(
        Bucket="mem", Key=prefix + "m", Body=b"1", ContentType="text/a", Metadata={"k": "v"}
    )
    s3.copy_object(Bucket="mem", Key=prefix + "kept", CopySource=f"mem/{prefix}m")
    kept = s3.head_object(Bucket="mem", Key=prefix + "kept")
    assert (kept["ContentType"], kept["Metadata"]) == ("text/a", {"k": "v"})
    s3.copy_object(
        Bucket="mem",
        Key=prefix + "replaced",
        CopySource=f"mem/{prefix}m",
        MetadataDirective="REPLACE",
        ContentType="text/b",
        Metadata={"n": "w"},
    )
    replaced = s3.head_object(Bucket="mem", Key=prefix + "replaced")
    assert (replaced["ContentType"], replaced["Metadata"]) == ("text/b", {"n": "w"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(
            Bucket="mem",
            Key=prefix + "never",
            CopySource=f"mem/{prefix}m",
            CopySourceIfMatch='"other"',
        )
    assert _code(exc) == "PreconditionFailed"
