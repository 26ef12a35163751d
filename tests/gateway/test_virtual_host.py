"""Virtual-hosted-style addressing: the bucket in the Host header (``bucket.localhost``).

Clients connect to 127.0.0.1 whatever the name: ``*.localhost`` resolves to loopback on
many systems but not all (not on this CI machine), so a fixture answers such names with
127.0.0.1 in this process's resolver; the Host header the clients send is unchanged.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storager.gateway import S3App
from storager.services.memory import MemoryStorage
from tests.gateway.conftest import REGION, _Served
from tests.gateway.test_serve import _Process

CREDENTIALS = {"AKVHOST": "vhost-secret"}


class _Seen:
    """ASGI middleware remembering the Host header and path of each request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode()
            self.requests.append((host, scope["path"]))
        await self.app(scope, receive, send)


@pytest.fixture(autouse=True)
def localhost_subdomains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve ``*.localhost`` to 127.0.0.1, as systemd-resolved and browsers do."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[_Served, _Seen, dict[str, MemoryStorage]]]:
    stores = {"photos": MemoryStorage(), "logs.daily": MemoryStorage()}
    seen = _Seen(S3App(stores, credentials=CREDENTIALS, domain="localhost"))
    server = _Served(seen, lifespan="off")
    yield server, seen, stores
    server.stop()
    for store in stores.values():
        store.close()


def _client(port: int, style: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{port}",
        aws_access_key_id="AKVHOST",
        aws_secret_access_key="vhost-secret",
        region_name=REGION,
        config=Config(s3={"addressing_style": style}, retries={"max_attempts": 1}, **config),
    )


def test_virtual_hosted_client_names_the_bucket_in_the_host(served: Any) -> None:
    server, seen, stores = served
    s3 = _client(server.port, "virtual")
    seen.requests.clear()
    s3.put_object(Bucket="photos", Key="a/cat.jpg", Body=b"meow")
    assert seen.requests == [(f"photos.localhost:{server.port}", "/a/cat.jpg")]
    assert stores["photos"].read("a/cat.jpg") == b"meow"
    assert s3.get_object(Bucket="photos", Key="a/cat.jpg")["Body"].read() == b"meow"
    assert s3.head_object(Bucket="photos", Key="a/cat.jpg")["ContentLength"] == 4
    listed = s3.list_objects_v2(Bucket="photos", Prefix="a/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/cat.jpg"]
    s3.copy_object(
        Bucket="photos", Key="b.jpg", CopySource={"Bucket": "photos", "Key": "a/cat.jpg"}
    )
    s3.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "a/cat.jpg"}, {"Key": "b.jpg"}]})
    assert s3.list_objects_v2(Bucket="photos")["KeyCount"] == 0


def test_virtual_and_path_style_see_one_bucket(served: Any) -> None:
    server, seen, _ = served
    virtual, path = _client(server.port, "virtual"), _client(server.port, "path")
    path.put_object(Bucket="photos", Key="shared.txt", Body=b"one")
    assert virtual.get_object(Bucket="photos", Key="shared.txt")["Body"].read() == b"one"
    seen.requests.clear()
    path.delete_object(Bucket="photos", Key="shared.txt")
    assert seen.requests == [(f"localhost:{server.port}", "/photos/shared.txt")]
    with pytest.raises(ClientError) as missing:
        virtual.head_object(Bucket="photos", Key="shared.txt")
    assert missing.value.response["Error"]["Code"] == "404"


def test_bucket_with_a_dot_is_the_host_minus_the_domain(served: Any) -> None:
    _, _, stores = served
    # botocore puts dotted names in the path; other clients put them in the Host.
    stores["logs.daily"].write("x", b"12345")
    anonymous = S3App({"logs.daily": stores["logs.daily"]}, anonymous=True, domain="localhost")
    open_server = _Served(anonymous, lifespan="off")
    try:
        url = f"http://logs.daily.localhost:{open_server.port}/x"
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers["Content-Length"] == "5"
    finally:
        open_server.stop()


def test_unknown_bucket_in_the_host_is_no_such_bucket(served: Any) -> None:
    server, _, _ = served
    s3 = _client(server.port, "virtual")
    with pytest.raises(ClientError) as missing:
        s3.list_objects_v2(Bucket="nothere")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_wrong_secret_is_refused_in_virtual_style(served: Any) -> None:
    server, _, stores = served
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{server.port}",
        aws_access_key_id="AKVHOST",
        aws_secret_access_key="wrong",
        region_name=REGION,
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket="photos", Key="nope", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert [o.path for o in stores["photos"].list("")] == []


@pytest.mark.parametrize("signature", ["s3v4", "s3"])
def test_presigned_urls_in_virtual_style(served: Any, signature: str) -> None:
    server, _, stores = served
    s3 = _client(server.port, "virtual", signature_version=signature)
    stores["photos"].write("signed.txt", b"presigned")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "photos", "Key": "signed.txt"}, ExpiresIn=60
    )
    assert url.startswith(f"http://photos.localhost:{server.port}/signed.txt?")
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"presigned"
    tampered = url.replace("signed.txt", "other.txt")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403


def test_serve_domain_flag_serves_virtual_hosted_style() -> None:
    process = _Process(["memory://", "--bucket", "demo", "--anonymous", "--domain", "localhost"])
    try:
        s3 = _client(process.port, "virtual")
        s3.put_object(Bucket="demo", Key="k", Body=b"v")
        assert s3.get_object(Bucket="demo", Key="k")["Body"].read() == b"v"
        path = _client(process.port, "path")
        assert path.get_object(Bucket="demo", Key="k")["Body"].read() == b"v"
    finally:
        process.stop()
