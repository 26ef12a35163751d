"""Hand-made S3 requests for the negative tests: signed with storager._sigv4, sent raw."""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import zlib
from datetime import datetime
from urllib.parse import unquote

from storager._sigv4 import (
    STREAMING_PAYLOAD,
    Credentials,
    SigningKeys,
    chunk_signature,
    sign_headers,
    trailer_signature,
)
from tests.gateway.conftest import ACCESS_KEY, REGION, SECRET_KEY

_KEYS = SigningKeys()


class Answer:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def code(self) -> str:
        found = re.search(rb"<Code>([^<]*)</Code>", self.body)
        return found.group(1).decode() if found else ""


def send(
    port: int, method: str, raw_path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, raw_path, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return Answer(response.status, response.read(), dict(response.getheaders()))
    finally:
        conn.close()


def signed_headers(
    port: int,
    method: str,
    raw_path: str,
    payload_hash: str,
    extra: dict[str, str] | None = None,
    *,
    secret: str = SECRET_KEY,
    now: datetime | None = None,
) -> dict[str, str]:
    path, _, query = raw_path.partition("?")
    pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in query.split("&") if p]
    headers = {"host": f"127.0.0.1:{port}", **{k.lower(): v for k, v in (extra or {}).items()}}
    sign_headers(
        method,
        unquote(path),
        [(unquote(n), unquote(v)) for n, v in pairs],
        headers,
        payload_hash,
        Credentials(ACCESS_KEY, secret),
        REGION,
        now=now,
    )
    return headers


def put_signed(port: int, raw_path: str, body: bytes, **kwargs: object) -> Answer:
    """A PUT whose x-amz-content-sha256 is the body's hex SHA-256."""
    digest = hashlib.sha256(body).hexdigest()
    headers = signed_headers(port, "PUT", raw_path, digest, **kwargs)  # type: ignore[arg-type]
    headers["content-length"] = str(len(body))
    return send(port, "PUT", raw_path, body, headers)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def unsigned_trailer_body(chunks: list[bytes], trailer: str, *, final: bool = True) -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
    if final:
        out += b"0\r\n" + trailer.encode() + b"\r\n\r\n"
    return out


def signed_chunked(
    port: int,
    raw_path: str,
    chunks: list[bytes],
    *,
    tamper: int | None = None,
    trailer: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) upload."""
    decoded = sum(len(c) for c in chunks)
    form = STREAMING_PAYLOAD + ("-TRAILER" if trailer else "")
    extra = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
    }
    if trailer:
        extra["x-amz-trailer"] = trailer.partition(":")[0]
    headers = signed_headers(port, "PUT", raw_path, form, extra)
    signature = headers["authorization"].rpartition("Signature=")[2]
    timestamp = headers["x-amz-date"]
    scope = f"{timestamp[:8]}/{REGION}/s3/aws4_request"
    key = _KEYS.get(SECRET_KEY, timestamp[:8], REGION, "s3")
    body = b""
    previous = signature
    for index, chunk in enumerate([*chunks, b""]):
        previous = chunk_signature(
            key, timestamp, scope, previous, hashlib.sha256(chunk).hexdigest()
        )
        sent = chunk
        if tamper is not None and index == tamper:
            sent = bytes([chunk[0] ^ 1]) + chunk[1:]
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    if trailer:
        body = body[:-2]  # the final chunk's header line is followed by the trailer
        line = trailer.encode() + b"\n"
        signature = trailer_signature(key, timestamp, scope, previous, line)
        body += trailer.encode() + b"\r\n" + f"x-amz-trailer-signature:{signature}\r\n\r\n".encode()
    headers["content-length"] = str(len(body))
    return headers, body
