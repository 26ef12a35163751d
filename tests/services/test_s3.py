"""The s3 service against real servers: moto and SeaweedFS's S3 gateway.

boto3 is used for setup (buckets) and to look behind the service (multipart uploads
left over), never in place of the service under test.
"""

from __future__ import annotations

import secrets
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

import storager
from storager import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    PairInvalidError,
    Part,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)
from storager.services.s3 import S3Storage
from storager.testing import StoragerSuite, url_factory

pytestmark = pytest.mark.s3

MiB = 1 << 20


@dataclass(frozen=True)
class Bucket:
    """One bucket on one server, and how to reach it."""

    server: str
    endpoint: str
    name: str
    access_key: str
    secret_key: str
    client: Any  # a boto3 S3 client, for setup and inspection only

    def url(self, work_dir: str = "") -> str:
        return (
            f"s3://{self.name}/{work_dir.lstrip('/')}?endpoint={self.endpoint}&location=us-east-1"
        )

    @property
    def credential(self) -> str:
        return f"hmac:{self.access_key}:{self.secret_key}"

    def open(self, work_dir: str = "", **pairs: Any) -> S3Storage:
        store = storager.open(self.url(work_dir), **{"credential": self.credential, **pairs})
        assert isinstance(store, S3Storage)
        return store


def _make_bucket(server: Any, label: str) -> Bucket:
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    name = f"storager-{label}-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return Bucket(label, server.endpoint, name, server.access_key, server.secret_key, client)


@pytest.fixture(scope="session")
def moto_bucket(moto_server: Any) -> Bucket:
    return _make_bucket(moto_server, "moto")


@pytest.fixture(scope="session")
def seaweedfs_bucket(seaweedfs_server: Any) -> Bucket:
    return _make_bucket(seaweedfs_server, "seaweedfs")


@pytest.fixture(params=["moto", "seaweedfs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    return request.getfixturevalue(f"{request.param}_bucket")  # type: ignore[no-any-return]


@pytest.fixture
def store(bucket: Bucket) -> Iterator[S3Storage]:
    with bucket.open(f"/t-{secrets.token_hex(4)}/") as store:
        yield store


def _uploads(bucket: Bucket, prefix: str) -> list[dict[str, Any]]:
    response = bucket.client.list_multipart_uploads(Bucket=bucket.name, Prefix=prefix)
    return list(response.get("Uploads", []))


def _key(store: S3Storage, path: str) -> str:
    return store.metadata().work_dir.lstrip("/") + path


# -- the conformance suite on both servers ------------------------------------------------


class TestS3Moto(StoragerSuite):
    # moto runs inside this process and keeps every object (and its parts) in Python
    # memory, so tracemalloc would count the server's copies as the client's. The bound
    # on the client is checked against SeaweedFS, a separate process.
    write_memory_limit = None

    def test_write_multipart_unknown_upload_raises_not_found(self, store: Any) -> None:
        pytest.skip(
            "moto answers UploadPart for an unknown upload id with HTTP 500 instead of "
            "NoSuchUpload (404); SeaweedFS runs this check"
        )

    @pytest.fixture
    def storager_factory(self, moto_bucket: Bucket) -> Callable[..., storager.Storager]:
        return url_factory(moto_bucket.url(), credential=moto_bucket.credential)


class TestS3SeaweedFS(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, seaweedfs_bucket: Bucket) -> Callable[..., storager.Storager]:
        return url_factory(seaweedfs_bucket.url(), credential=seaweedfs_bucket.credential)


# -- presigned URLs -----------------------------------------------------------------------


def test_presigned_get_url_works_with_urllib(store: S3Storage) -> None:
    store.write("signed.txt", b"signed bytes")
    url = store.presign_read("signed.txt", expire=120)
    assert "Signature" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"signed bytes"


def test_presigned_put_url_works_with_urllib(store: S3Storage) -> None:
    url = store.presign_write("put.bin", expire=120)
    # An explicit Content-Type: urllib's default (form-urlencoded) makes moto's web
    # framework consume the body as a form.
    request = urllib.request.Request(
        url,
        data=b"\x00put bytes\xff",
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    assert store.read("put.bin") == b"\x00put bytes\xff"


# -- multipart ------------------------------------------------------------------------------


def test_multipart_abort_leaves_no_upload_and_no_object(bucket: Bucket, store: S3Storage) -> None:
    upload = store.create_multipart("aborted.bin")
    store.write_multipart(upload, 1, b"a" * (5 * MiB))
    key = _key(store, "aborted.bin")
    assert [u["UploadId"] for u in _uploads(bucket, key)] == [upload.upload_id]
    store.abort_multipart(upload)
    assert _uploads(bucket, key) == []
    with pytest.raises(NotFoundError):
        store.stat("aborted.bin")
    assert [obj.path for obj in store.list("")] == []


def test_a_part_sent_twice_completes_with_its_last_data_or_asks_for_the_etag(
    store: S3Storage,
) -> None:
    # SeaweedFS lists a part sent twice under both ETags: completing without ETags must
    # then refuse (naming the part), never complete with the first data; moto lists one.
    upload = store.create_multipart("twice.bin")
    store.write_multipart(upload, 1, b"o" * (5 * MiB))
    store.write_multipart(upload, 1, b"n" * (5 * MiB))
    last = store.write_multipart(upload, 2, b"tail")
    listed = {part.number for part in store.list_multipart(upload)}
    assert listed == {1, 2}
    try:
        store.complete_multipart(upload, [Part(1, 5 * MiB, ""), last])
    except InvalidArgumentError as error:
        assert "part 1" in str(error)
        with pytest.raises(NotFoundError):
            store.stat("twice.bin")
        store.abort_multipart(upload)
    else:
        assert store.read("twice.bin") == b"n" * (5 * MiB) + b"tail"


def test_generator_larger_than_a_part_goes_through_multipart(store: S3Storage) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(10):  # 10 MiB: one 8 MiB part and a 2 MiB last part
            yield bytes([i]) * MiB

    written = store.write("streamed.bin", chunks())
    assert written.content_length == 10 * MiB
    assert written.etag is not None and written.etag.endswith("-2")
    assert store.stat("streamed.bin").etag == written.etag
    assert store.read("streamed.bin", offset=8 * MiB - 1, size=2) == bytes([7, 8])


def test_small_generator_is_one_put(store: S3Storage) -> None:
    written = store.write("small.bin", iter([b"ab", b"cd"]))
    assert written.etag is not None and "-" not in written.etag
    assert store.read("small.bin") == b"abcd"


def test_failed_stream_aborts_its_upload(bucket: Bucket, store: S3Storage) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * (9 * MiB)  # enough to start a multipart upload
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):  # the caller's own error
        store.write("broken.bin", chunks())
    assert _uploads(bucket, _key(store, "broken.bin")) == []
    with pytest.raises(NotFoundError):
        store.stat("broken.bin")


def test_streamed_write_with_wrong_content_md5_leaves_nothing(
    bucket: Bucket, store: S3Storage
) -> None:
    data = iter([b"y" * (9 * MiB)])
    with pytest.raises(storager.InvalidArgumentError):
        store.write("md5.bin", data, content_md5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert _uploads(bucket, _key(store, "md5.bin")) == []
    with pytest.raises(NotFoundError):
        store.stat("md5.bin")


def test_open_reader_fetches_ranges(store: S3Storage) -> None:
    data = secrets.token_bytes(9 * MiB)
    store.write("ranged.bin", data)
    with store.open_reader("ranged.bin", offset=MiB, size=7 * MiB) as reader:
        assert reader.read(10) == data[MiB : MiB + 10]
        reader.seek(6 * MiB)
        assert reader.read() == data[7 * MiB : 8 * MiB]


# -- write pairs ------------------------------------------------------------------------------


def test_stat_fills_etag_length_type_and_metadata(store: S3Storage) -> None:
    written = store.write(
        "meta.txt",
        b"hello",
        content_type="text/plain",
        user_metadata={"owner": "alice"},
        content_md5="XUFAKrxLKna5cZ2REBfFkg==",
    )
    info = store.stat("meta.txt")
    assert info.content_length == 5
    assert info.etag == written.etag == "5d41402abc4b2a76b9719d911017c592"
    assert info.content_type == "text/plain"
    assert dict(info.user_metadata) == {"owner": "alice"}
    assert info.last_modified is not None and info.last_modified.tzinfo is not None


def test_write_with_wrong_content_md5_is_refused(store: S3Storage) -> None:
    with pytest.raises(storager.InvalidArgumentError):
        store.write("bad.txt", b"hello", content_md5="1B2M2Y8AsgTpgAmY7PhCfg==")
    with pytest.raises(NotFoundError):
        store.stat("bad.txt")


def test_if_none_match_star_refuses_existing_object(store: S3Storage) -> None:
    store.write("once.txt", b"first", if_none_match="*")
    with pytest.raises(AlreadyExistsError):
        store.write("once.txt", b"second", if_none_match="*")
    assert store.read("once.txt") == b"first"


def test_if_match_writes_only_over_the_given_etag(store: S3Storage) -> None:
    etag = store.write("cas.txt", b"v1").etag
    assert etag is not None
    with pytest.raises(PreconditionFailedError):
        store.write("cas.txt", b"v2", if_match="0" * 32)
    assert store.read("cas.txt") == b"v1"
    store.write("cas.txt", b"v3", if_match=etag)
    assert store.read("cas.txt") == b"v3"


def test_storage_class_is_reported_by_stat(store: S3Storage) -> None:
    store.write("cold.txt", b"x", storage_class="STANDARD_IA")
    assert store.stat("cold.txt").system_metadata.get("storage_class") == "STANDARD_IA"


def test_default_content_type_applies(bucket: Bucket) -> None:
    with bucket.open(f"/t-{secrets.token_hex(4)}/", default_content_type="text/csv") as store:
        store.write("a.csv", b"1,2")
        assert store.stat("a.csv").content_type == "text/csv"


# -- directories and listing ------------------------------------------------------------------


def test_dir_mode_lists_markers_and_prefixes_once(store: S3Storage) -> None:
    store.create_dir("empty")
    store.write("full/a.txt", b"a")
    store.write("top.txt", b"t")
    listed = sorted((obj.path, obj.is_dir) for obj in store.list(""))
    assert listed == [("empty/", True), ("full/", True), ("top.txt", False)]
    assert store.stat("empty/").is_dir
    assert store.stat("full").is_dir


# -- credentials and errors -------------------------------------------------------------------


def test_credential_pair_is_used(bucket: Bucket) -> None:
    with bucket.open(f"/t-{secrets.token_hex(4)}/") as store:
        store.write("c.txt", b"c")
        assert store.read("c.txt") == b"c"


def test_credentials_from_the_environment(bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", bucket.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", bucket.secret_key)
    store = storager.open(bucket.url(f"/t-{secrets.token_hex(4)}/"))
    with store:
        store.write("env.txt", b"from env")
        assert store.read("env.txt") == b"from env"


def test_half_set_environment_says_what_is_missing(
    bucket: Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Only the key id in the environment: botocore's chain stops with "missing:
    # AWS_SECRET_ACCESS_KEY", which the error keeps; the key id itself is not echoed.
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDHALFSETKEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with (
        storager.open(bucket.url(f"/t-{secrets.token_hex(4)}/")) as store,
        pytest.raises(PermissionDeniedError) as info,
    ):
        store.write("half.txt", b"x")
    assert "AWS_SECRET_ACCESS_KEY" in str(info.value)
    assert "AKIDHALFSETKEY" not in str(info.value)


def test_malformed_credential_is_refused_without_echoing_it() -> None:
    with pytest.raises(PairInvalidError) as info:
        storager.open("s3://bucket/?endpoint=http://127.0.0.1:1", credential="s3cr3t-value")
    assert "s3cr3t-value" not in str(info.value)


def test_wrong_secret_is_permission_denied(moto_bucket: Bucket, moto_server: Any) -> None:
    # SeaweedFS enforces keys only when started with them, and the session's SeaweedFS is
    # started open. moto accepts any key unless IAM authentication is on: turn it on for an
    # IAM user made here, then sign once with its secret and once with a wrong one.
    from moto.core.authorization import enable_iam_authentication

    iam = boto3.client(
        "iam",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name=moto_server.region,
    )
    user = f"storager-{secrets.token_hex(4)}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="s3-all",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    wrong = "wrong-" + secrets.token_hex(8)
    work_dir = f"/t-{secrets.token_hex(4)}/"
    with enable_iam_authentication():
        good = moto_bucket.open(
            work_dir, credential=f"hmac:{key['AccessKeyId']}:{key['SecretAccessKey']}"
        )
        good.write("auth.txt", b"signed right")
        assert good.read("auth.txt") == b"signed right"
        bad = moto_bucket.open(work_dir, credential=f"hmac:{key['AccessKeyId']}:{wrong}")
        with pytest.raises(PermissionDeniedError) as info:
            bad.read("auth.txt")
    assert wrong not in str(info.value)
    assert key["SecretAccessKey"] not in str(info.value)
    assert wrong not in repr(bad)


def test_repr_and_errors_never_show_the_secret(bucket: Bucket) -> None:
    secret = "topsecret-" + secrets.token_hex(8)
    store = storager.open(bucket.url("/t/"), credential=f"hmac:{bucket.access_key}:{secret}")
    assert secret not in repr(store)
    with pytest.raises(StorageError) as info:
        store.read("missing.txt")
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_missing_key_is_not_found(store: S3Storage) -> None:
    with pytest.raises(NotFoundError) as info:
        store.read("nope.txt")
    assert info.value.op == "read"
    assert info.value.service == "s3"
    assert info.value.path.endswith("/nope.txt")
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.__cause__ is not None


def test_missing_bucket_is_not_found_with_a_clear_reason(bucket: Bucket) -> None:
    missing = f"storager-missing-{secrets.token_hex(4)}"
    store = storager.open(
        f"s3://{missing}/?endpoint={bucket.endpoint}", credential=bucket.credential
    )
    for call in (lambda: store.read("a.txt"), lambda: store.stat("a.txt")):
        with pytest.raises(NotFoundError) as info:
            call()
        assert "does not exist" in info.value.reason
        assert missing in info.value.reason
    with pytest.raises(NotFoundError):
        list(store.list(""))


def test_no_vendor_exception_escapes_for_an_unreachable_endpoint() -> None:
    store = storager.open("s3://bucket/?endpoint=http://127.0.0.1:9", credential="hmac:a:b")
    with pytest.raises(StorageError) as info:
        store.stat("a.txt")
    assert info.value.retryable


def test_force_path_style_from_the_connection_string(bucket: Bucket) -> None:
    url = bucket.url(f"/t-{secrets.token_hex(4)}/") + "&force_path_style=true"
    with storager.open(url, credential=bucket.credential) as store:
        store.write("p.txt", b"path style")
        assert store.read("p.txt") == b"path style"
    with pytest.raises(storager.ConnectionStringInvalidError):
        storager.open(bucket.url() + "&force_path_style=maybe")


def test_capability_declares_multipart_limits(store: S3Storage) -> None:
    capability = store.metadata().capability
    assert capability.multipart_part_size_min == 5 * MiB
    assert capability.multipart_part_size_max == 5 * 1024 * MiB
    assert capability.multipart_parts_max == 10_000
    assert capability.write_empty
    for protocol in (
        storager.Copier,
        storager.Mover,
        storager.Segmenter,
        storager.Presigner,
        storager.Direr,
    ):
        assert isinstance(store, protocol), protocol
    assert not isinstance(store, storager.Appender)
