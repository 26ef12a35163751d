"""Requests that must fail: the right S3 error, nothing stored, and the server serves on."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storager import NotFoundError
from storager._sigv4 import STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD
from tests.gateway._raw import (
    crc32_b64,
    put_signed,
    send,
    signed_chunked,
    signed_headers,
    unsigned_trailer_body,
)
from tests.gateway.conftest import Gateway


def _port(gateway: Gateway) -> int:
    return int(gateway.endpoint.rpartition(":")[2])


def _absent(gateway: Gateway, key: str) -> None:
    with pytest.raises(NotFoundError):
        gateway.stores["mem"].stat(key)


@pytest.fixture(autouse=True)
def serves_on(gateway: Gateway) -> Any:
    """After every test here, the gateway still answers a signed request."""
    yield
    s3 = gateway.client()
    s3.put_object(Bucket="mem", Key="alive", Body=b"yes")
    assert s3.get_object(Bucket="mem", Key="alive")["Body"].read() == b"yes"


def test_wrong_secret_is_signature_does_not_match(gateway: Gateway, prefix: str) -> None:
    answer = put_signed(_port(gateway), f"/mem/{prefix}a", b"data", secret="wrong")
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    _absent(gateway, prefix + "a")


def test_unsigned_amz_header_is_refused(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    body = b"data"
    headers = signed_headers(port, "PUT", f"/mem/{prefix}a", hashlib.sha256(body).hexdigest())
    headers["x-amz-meta-sneaked"] = "in"
    headers["content-length"] = "4"
    answer = send(port, "PUT", f"/mem/{prefix}a", body, headers)
    assert (answer.status, answer.code) == (403, "AccessDenied")
    _absent(gateway, prefix + "a")


def test_skewed_clock_is_refused(gateway: Gateway, prefix: str) -> None:
    past = datetime.now(UTC) - timedelta(minutes=20)
    answer = put_signed(_port(gateway), f"/mem/{prefix}a", b"data", now=past)
    assert (answer.status, answer.code) == (403, "RequestTimeTooSkewed")
    _absent(gateway, prefix + "a")


def test_unsigned_request_is_refused(gateway: Gateway, prefix: str) -> None:
    answer = send(_port(gateway), "GET", "/mem/", headers={"host": "x"})
    assert (answer.status, answer.code) == (403, "AccessDenied")


def test_altered_payload_byte_stores_nothing(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    body = b"0123456789" * 1000
    headers = signed_headers(port, "PUT", f"/mem/{prefix}a", hashlib.sha256(body).hexdigest())
    headers["content-length"] = str(len(body))
    altered = body[:500] + b"X" + body[501:]
    answer = send(port, "PUT", f"/mem/{prefix}a", altered, headers)
    assert (answer.status, answer.code) == (400, "XAmzContentSHA256Mismatch")
    _absent(gateway, prefix + "a")


def test_wrong_content_md5_stores_nothing(gateway: Gateway, prefix: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    answer = put_signed(_port(gateway), f"/mem/{prefix}a", b"data", extra={"content-md5": wrong})
    assert (answer.status, answer.code) == (400, "BadDigest")
    _absent(gateway, prefix + "a")
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    answer = put_signed(_port(gateway), f"/mem/{prefix}b", b"data", extra={"content-md5": right})
    assert answer.status == 200
    assert gateway.stores["mem"].read(prefix + "b") == b"data"


def _trailer_put(gateway: Gateway, key: str, body: bytes, trailer_name: str) -> Any:
    port = _port(gateway)
    extra = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "11",
        "x-amz-trailer": trailer_name,
    }
    headers = signed_headers(port, "PUT", f"/mem/{key}", STREAMING_UNSIGNED_TRAILER, extra)
    headers["content-length"] = str(len(body))
    return send(port, "PUT", f"/mem/{key}", body, headers)


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "sha1", "sha256"])
def test_trailer_checksums_are_verified(gateway: Gateway, prefix: str, algorithm: str) -> None:
    import google_crc32c

    data = b"hello world"
    digests = {
        "crc32": base64.b64decode(crc32_b64(data)),
        "crc32c": google_crc32c.Checksum(data).digest(),
        "sha1": hashlib.sha1(data).digest(),
        "sha256": hashlib.sha256(data).digest(),
    }
    name = f"x-amz-checksum-{algorithm}"
    good = base64.b64encode(digests[algorithm]).decode()
    bad = base64.b64encode(bytes(len(digests[algorithm]))).decode()
    chunks = [b"hello ", b"world"]
    answer = _trailer_put(
        gateway, prefix + "bad", unsigned_trailer_body(chunks, f"{name}:{bad}"), name
    )
    assert (answer.status, answer.code) == (400, "BadDigest")
    _absent(gateway, prefix + "bad")
    answer = _trailer_put(
        gateway, prefix + "good", unsigned_trailer_body(chunks, f"{name}:{good}"), name
    )
    assert answer.status == 200, answer.body
    assert gateway.stores["mem"].read(prefix + "good") == data


def test_truncated_chunked_body_stores_nothing(gateway: Gateway, prefix: str) -> None:
    body = unsigned_trailer_body([b"hello ", b"world"], "", final=False)
    answer = _trailer_put(gateway, prefix + "cut", body, "x-amz-checksum-crc32")
    assert (answer.status, answer.code) == (400, "IncompleteBody")
    _absent(gateway, prefix + "cut")


def test_oversized_chunk_header_is_refused(gateway: Gateway, prefix: str) -> None:
    body = b"b;" + b"x" * 10000 + b"\r\nhello world\r\n0\r\n\r\n"
    answer = _trailer_put(gateway, prefix + "big", body, "x-amz-checksum-crc32")
    assert (answer.status, answer.code) == (400, "InvalidRequest")
    _absent(gateway, prefix + "big")


def test_signed_chunks_verify_and_a_tampered_chunk_stores_nothing(
    gateway: Gateway, prefix: str
) -> None:
    port = _port(gateway)
    chunks = [b"a" * 8192, b"b" * 8192, b"tail"]
    headers, body = signed_chunked(port, f"/mem/{prefix}ok", chunks)
    answer = send(port, "PUT", f"/mem/{prefix}ok", body, headers)
    assert answer.status == 200, answer.body
    assert gateway.stores["mem"].read(prefix + "ok") == b"".join(chunks)
    headers, body = signed_chunked(port, f"/mem/{prefix}bad", chunks, tamper=1)
    answer = send(port, "PUT", f"/mem/{prefix}bad", body, headers)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    _absent(gateway, prefix + "bad")


def test_signed_chunks_with_a_signed_trailer(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    chunks = [b"hello ", b"world"]
    trailer = f"x-amz-checksum-crc32:{crc32_b64(b'hello world')}"
    headers, body = signed_chunked(port, f"/mem/{prefix}t", chunks, trailer=trailer)
    answer = send(port, "PUT", f"/mem/{prefix}t", body, headers)
    assert answer.status == 200, answer.body
    assert gateway.stores["mem"].read(prefix + "t") == b"hello world"
    forged = body.replace(crc32_b64(b"hello world").encode(), crc32_b64(b"other").encode())
    answer = send(port, "PUT", f"/mem/{prefix}f", forged, headers)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    _absent(gateway, prefix + "f")


def test_client_disconnect_mid_upload_stores_nothing(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    path = f"/mem/{prefix}cut"
    headers = signed_headers(port, "PUT", path, UNSIGNED_PAYLOAD)
    headers["content-length"] = str(8 << 20)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + b"x" * (2 << 20))
        time.sleep(0.2)
    time.sleep(1.0)  # the write thread sees the disconnect and drops the write
    _absent(gateway, prefix + "cut")


def test_stalled_upload_is_dropped_and_frees_its_thread(
    gateway: Gateway, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storager.gateway import _body

    monkeypatch.setattr(_body, "BODY_IDLE_TIMEOUT", 0.5)
    port = _port(gateway)
    path = f"/mem/{prefix}stalled"
    headers = signed_headers(port, "PUT", path, UNSIGNED_PAYLOAD)
    headers["content-length"] = str(8 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + b"x" * (2 << 20))
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"RequestTimeout" in answer
    _absent(gateway, prefix + "stalled")


def test_client_leaving_mid_download_leaves_the_server_serving(
    gateway: Gateway, prefix: str
) -> None:
    port = _port(gateway)
    gateway.stores["mem"].write(prefix + "large", b"z" * (6 << 20))
    path = f"/mem/{prefix}large"
    headers = signed_headers(port, "GET", path, UNSIGNED_PAYLOAD)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(0.3)  # the server meets the closed socket while it streams


@pytest.mark.parametrize(
    "raw_key",
    [
        "a/../b",
        "..%2Fescape",
        "a/./b",
        "%2Fabs",
        "a%01b",
        "a%7Fb",
        "a%5Cb",
        "a//b",
        "a%EF%BF%BFb",  # U+FFFF: no XML answer could name it
        "a%EF%BF%BEb",  # U+FFFE
    ],
)
def test_bad_keys_are_refused(gateway: Gateway, prefix: str, raw_key: str) -> None:
    answer = put_signed(_port(gateway), f"/mem/{prefix}{raw_key}", b"data")
    assert (answer.status, answer.code) == (400, "InvalidArgument")
    assert [o.path for o in gateway.stores["mem"].list(prefix, list_mode="prefix")] == []


def test_anonymous_gateway_takes_unsigned_and_any_key(gateway: Gateway, prefix: str) -> None:
    port = int(gateway.anonymous_endpoint.rpartition(":")[2])
    answer = send(port, "PUT", "/open/a", b"data", {"host": "x", "content-length": "4"})
    assert answer.status == 200
    assert send(port, "GET", "/open/a", headers={"host": "x"}).body == b"data"


def test_health_endpoints_answer_without_auth(gateway: Gateway) -> None:
    port = _port(gateway)
    assert send(port, "GET", "/healthz", headers={"host": "x"}).status == 200
    ready = send(port, "GET", "/readyz", headers={"host": "x"})
    assert (ready.status, ready.body) == (200, b"ok\n")
