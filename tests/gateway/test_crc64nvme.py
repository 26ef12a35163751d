"""CRC64NVME checksums (``x-amz-checksum-crc64nvme``) as headers and trailers.

The gateway's digest is checked against the catalogue's check value and against a
bit-at-a-time reference written here from the model's parameters (a different algorithm
than the table-driven one the gateway uses), then through the gateway in every form a
client sends it. botocore sends CRC64NVME only with awscrt, which is not installed here,
so the requests are made by hand (tests/gateway/_raw.py).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storager._sigv4 import STREAMING_UNSIGNED_TRAILER
from storager.gateway._checksums import ALGORITHMS
from tests.gateway._raw import send, signed_chunked, signed_headers, unsigned_trailer_body
from tests.gateway.conftest import Gateway

# CRC-64/NVME: poly 0xad93d23594c93659 reflected, init and xorout all ones.
_POLY_REFLECTED = int(f"{0xAD93D23594C93659:064b}"[::-1], 2)
_ONES = (1 << 64) - 1
CHECK_VALUE = 0xAE8B14860A799888  # of b"123456789", from the CRC catalogue


def reference_crc64nvme(data: bytes) -> int:
    crc = _ONES
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY_REFLECTED if crc & 1 else 0)
    return crc ^ _ONES


def _gateway_crc(pieces: list[bytes]) -> int:
    digest = ALGORITHMS["crc64nvme"]()
    for piece in pieces:
        digest.update(memoryview(piece))
    return int.from_bytes(digest.value(), "big")


def _b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big")).decode()


def test_check_value_of_the_catalogue() -> None:
    assert reference_crc64nvme(b"123456789") == CHECK_VALUE
    assert _gateway_crc([b"1234", b"", b"56789"]) == CHECK_VALUE
    assert _gateway_crc([]) == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_any_split_matches_the_bitwise_reference(pieces: list[bytes]) -> None:
    assert _gateway_crc(pieces) == reference_crc64nvme(b"".join(pieces))


def test_awscrt_agrees_where_installed() -> None:
    checksums = pytest.importorskip("awscrt.checksums")
    data = bytes(range(256)) * 41
    assert _gateway_crc([data]) == checksums.crc64nvme(data)


def _port(gateway: Gateway) -> int:
    return int(gateway.endpoint.rpartition(":")[2])


def _absent(gateway: Gateway, key: str) -> None:
    assert [o.path for o in gateway.stores["mem"].list(key)] == []


def test_header_checksum_is_verified(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    data = b"crc64 over a header"
    for key, value, code in [
        ("bad", reference_crc64nvme(b"other"), "BadDigest"),
        ("good", reference_crc64nvme(data), ""),
    ]:
        path = f"/mem/{prefix}{key}"
        extra = {"x-amz-checksum-crc64nvme": _b64(value)}
        headers = signed_headers(port, "PUT", path, hashlib.sha256(data).hexdigest(), extra)
        headers["content-length"] = str(len(data))
        answer = send(port, "PUT", path, data, headers)
        assert answer.code == code, answer.body
    _absent(gateway, prefix + "bad")
    assert gateway.stores["mem"].read(prefix + "good") == data


def test_unsigned_trailer_checksum_is_verified(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    chunks = [b"hello ", b"world"]
    name = "x-amz-checksum-crc64nvme"
    for key, value, code in [
        ("bad", reference_crc64nvme(b"hello"), "BadDigest"),
        ("good", reference_crc64nvme(b"hello world"), ""),
    ]:
        path = f"/mem/{prefix}{key}"
        body = unsigned_trailer_body(chunks, f"{name}:{_b64(value)}")
        extra = {
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": "11",
            "x-amz-trailer": name,
        }
        headers = signed_headers(port, "PUT", path, STREAMING_UNSIGNED_TRAILER, extra)
        headers["content-length"] = str(len(body))
        answer = send(port, "PUT", path, body, headers)
        assert answer.code == code, answer.body
    _absent(gateway, prefix + "bad")
    assert gateway.stores["mem"].read(prefix + "good") == b"hello world"


def test_signed_trailer_checksum_is_verified(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    chunks = [b"a" * 70000, b"b" * 5]
    good = f"x-amz-checksum-crc64nvme:{_b64(reference_crc64nvme(b''.join(chunks)))}"
    headers, body = signed_chunked(port, f"/mem/{prefix}s", chunks, trailer=good)
    assert send(port, "PUT", f"/mem/{prefix}s", body, headers).status == 200
    assert gateway.stores["mem"].read(prefix + "s") == b"".join(chunks)
    bad = f"x-amz-checksum-crc64nvme:{_b64(reference_crc64nvme(b'x'))}"
    headers, body = signed_chunked(port, f"/mem/{prefix}t", chunks, trailer=bad)
    answer = send(port, "PUT", f"/mem/{prefix}t", body, headers)
    assert (answer.status, answer.code) == (400, "BadDigest")
    _absent(gateway, prefix + "t")


@pytest.mark.parametrize("tls", [False, True])
def test_boto3_crc64nvme_where_awscrt_is_installed(
    gateway: Gateway, prefix: str, tls: bool
) -> None:
    pytest.importorskip("awscrt.checksums")  # botocore computes CRC64NVME only with awscrt
    s3 = gateway.client(tls=tls)
    data = b"n" * 100_000
    s3.put_object(Bucket="mem", Key=prefix + "b", Body=data, ChecksumAlgorithm="CRC64NVME")
    assert gateway.stores["mem"].read(prefix + "b") == data
