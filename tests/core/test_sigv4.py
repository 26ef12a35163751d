"""storager's SigV4 against botocore's signer, the oracle: byte-identical signatures for
random requests, and verification that accepts what botocore signs and refuses every
altered byte."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from storager import PermissionDeniedError
from storager._sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    UNSIGNED_PAYLOAD,
    Credentials,
    SigningKeys,
    SigV4Error,
    Verified,
    _hmac_hex,
    chunk_signature,
    presign,
    sign_headers,
    uri_encode,
    verify,
)

NOW = datetime(2026, 12, 5, 14, 30, 15, tzinfo=UTC)
CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
HOST = "127.0.0.1:9000"

# Keys and query values with the characters clients actually send: unreserved, reserved,
# spaces, percent signs, unicode, doubled slashes and dot segments (S3 never normalises).
_key_chars = st.sampled_from(list("aZ09-_.~/ +%=&?#:@!$'()*,;[]éü中\u00a0"))
keys = st.text(_key_chars, min_size=1, max_size=24).map(lambda k: "/bucket/" + k)
_query_text = st.text(st.sampled_from(list("ab-_.~ +%=/:é")), max_size=8)
queries = st.lists(st.tuples(st.text("abcXY-", min_size=1, max_size=6), _query_text), max_size=4)
header_values = st.text(st.sampled_from(list('abc 123\t;,=/"')), min_size=1, max_size=16).filter(
    lambda v: v.strip() != ""
)
extra_headers = st.dictionaries(
    st.sampled_from(["content-type", "x-amz-meta-a", "x-amz-meta-b", "content-md5", "range"]),
    header_values,
    max_size=3,
)
methods = st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"])
bodies = st.binary(max_size=64)


def _boto_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))


def _url(path: str, query: list[tuple[str, str]]) -> str:
    encoded = "&".join(f"{quote(n, safe='-_.~')}={quote(v, safe='-_.~')}" for n, v in query)
    return f"http://{HOST}{quote(path, safe='/~')}" + (f"?{encoded}" if encoded else "")


def _boto_signed(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes
) -> AWSRequest:
    request = AWSRequest(method=method, url=_url(path, query), headers=dict(headers), data=body)
    S3SigV4Auth(BotoCredentials(CREDS.access_key, CREDS.secret_key), "s3", "us-east-1").add_auth(
        request
    )
    return request


@settings(max_examples=150, deadline=None)
@given(method=methods, path=keys, query=queries, extra=extra_headers, body=bodies)
def test_header_signatures_are_byte_identical_to_botocore(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    extra: dict[str, str],
    body: bytes,
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _boto_now(mp)
        boto = _boto_signed(method, path, query, extra, body)
    ours = {"host": HOST, **extra}
    sign_headers(
        method, path, query, ours, hashlib.sha256(body).hexdigest(), CREDS, "us-east-1", now=NOW
    )
    assert ours["authorization"] == boto.headers["Authorization"]
    assert ours["x-amz-date"] == boto.headers["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == boto.headers["X-Amz-Content-SHA256"]


@settings(max_examples=100, deadline=None)
@given(method=methods, path=keys, query=queries, expires=st.integers(1, 604800))
def test_presigned_urls_are_byte_identical_to_botocore(
    method: str, path: str, query: list[tuple[str, str]], expires: int
) -> None:
    # botocore folds repeated query names into one (a dict); keep names unique here.
    query = list(dict(query).items())
    request = AWSRequest(method=method, url=_url(path, query))
    with pytest.MonkeyPatch.context() as mp:
        _boto_now(mp)
        S3SigV4QueryAuth(
            BotoCredentials(CREDS.access_key, CREDS.secret_key), "s3", "us-east-1", expires
        ).add_auth(request)
    boto_query = urlsplit(request.url).query
    ours = presign(method, path, query, HOST, CREDS, "us-east-1", expires, now=NOW)
    assert _signature_of(ours) == _signature_of(boto_query)
    assert sorted(ours.split("&")) == sorted(boto_query.split("&"))


def _signature_of(query: str) -> str:
    return next(p for p in query.split("&") if p.startswith("X-Amz-Signature="))


# -- verification ----------------------------------------------------------------------


def _secret(access_key: str) -> str | None:
    return CREDS.secret_key if access_key == CREDS.access_key else None


def _received(request: AWSRequest) -> tuple[str, str, str, dict[str, str]]:
    """What a server receives: method, raw path, raw query, lower-case headers."""
    parts = urlsplit(request.url)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers.setdefault("host", parts.netloc)
    return request.method, parts.path, parts.query, headers


@settings(max_examples=100, deadline=None)
@given(method=methods, path=keys, query=queries, extra=extra_headers, body=bodies)
def test_what_botocore_signs_verifies(
    method: str, path: str, query: list[tuple[str, str]], extra: dict[str, str], body: bytes
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _boto_now(mp)
        request = _boto_signed(method, path, query, extra, body)
    got = verify(*_received(request), _secret, now=NOW + timedelta(minutes=3))
    assert got.access_key == CREDS.access_key and not got.presigned
    assert got.payload_hash == hashlib.sha256(body).hexdigest()


@settings(max_examples=60, deadline=None)
@given(method=methods, path=keys, query=queries, extra=extra_headers, data=st.data())
def test_every_altered_byte_of_a_signed_request_is_refused(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    extra: dict[str, str],
    data: st.DataObject,
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        _boto_now(mp)
        request = _boto_signed(method, path, query, extra, b"body")
    verb, raw_path, raw_query, headers = _received(request)
    where = data.draw(st.sampled_from(["method", "path", "query", "header"]))
    if where == "method":
        verb = "PATCH"
    elif where == "path":
        raw_path = raw_path + "x"
    elif where == "query":
        raw_query = raw_query + ("&" if raw_query else "") + "injected=1"
    else:
        name = data.draw(st.sampled_from(sorted(n for n in headers if n != "authorization")))
        headers[name] = headers[name] + "0"
    with pytest.raises(SigV4Error) as info:
        verify(verb, raw_path, raw_query, headers, _secret, now=NOW)
    assert isinstance(info.value, PermissionDeniedError)
    assert CREDS.secret_key not in str(info.value)


def test_presigned_urls_botocore_makes_verify_until_they_expire() -> None:
    request = AWSRequest(method="GET", url=_url("/bucket/a b.txt", []))
    with pytest.MonkeyPatch.context() as mp:
        _boto_now(mp)
        S3SigV4QueryAuth(
            BotoCredentials(CREDS.access_key, CREDS.secret_key), "s3", "us-east-1", 60
        ).add_auth(request)
    verb, raw_path, raw_query, headers = _received(request)
    got = verify(verb, raw_path, raw_query, headers, _secret, now=NOW + timedelta(seconds=59))
    assert got.presigned and got.payload_hash == UNSIGNED_PAYLOAD
    with pytest.raises(SigV4Error, match="expired") as info:
        verify(verb, raw_path, raw_query, headers, _secret, now=NOW + timedelta(seconds=61))
    assert info.value.code == "AccessDenied"
    with pytest.raises(SigV4Error) as info:
        verify("PUT", raw_path, raw_query, headers, _secret, now=NOW)
    assert info.value.code == "SignatureDoesNotMatch"


def _signed(**overrides: Any) -> tuple[str, str, str, dict[str, str]]:
    headers = {"host": HOST, "x-amz-meta-a": "1"}
    sign_headers("PUT", "/bucket/k", [], headers, EMPTY_SHA256, CREDS, "us-east-1", now=NOW)
    headers.update(overrides)
    return "PUT", "/bucket/k", "", headers


@pytest.mark.parametrize(
    ("change", "now", "code"),
    [
        ({}, NOW + timedelta(minutes=16), "RequestTimeTooSkewed"),
        ({}, NOW - timedelta(minutes=16), "RequestTimeTooSkewed"),
        ({"x-amz-meta-unsigned": "1"}, NOW, "AccessDenied"),
        ({"authorization": "AWS4-HMAC-SHA1 Credential=x"}, NOW, "AuthorizationHeaderMalformed"),
        ({"x-amz-content-sha256": "nothex"}, NOW, "InvalidArgument"),
        ({"x-amz-date": "yesterday"}, NOW, "AuthorizationHeaderMalformed"),
    ],
)
def test_requests_that_must_not_verify_get_the_s3_code(
    change: dict[str, str], now: datetime, code: str
) -> None:
    with pytest.raises(SigV4Error) as info:
        verify(*_signed(**change), _secret, now=now)
    assert info.value.code == code


def test_an_unknown_key_and_a_wrong_secret_are_told_apart_without_echoing_either() -> None:
    request = _signed()
    with pytest.raises(SigV4Error) as info:
        verify(*request, lambda _: None, now=NOW)
    assert info.value.code == "InvalidAccessKeyId"
    with pytest.raises(SigV4Error) as info:
        verify(*request, lambda _: "another-secret", now=NOW)
    assert info.value.code == "SignatureDoesNotMatch"
    assert "another-secret" not in str(info.value) and CREDS.secret_key not in repr(CREDS)


def test_a_region_other_than_the_servers_is_refused_when_one_is_set() -> None:
    request = _signed()
    assert verify(*request, _secret, now=NOW, region="us-east-1").scope.endswith("/s3/aws4_request")
    with pytest.raises(SigV4Error) as info:
        verify(*request, _secret, now=NOW, region="eu-west-1")
    assert info.value.code == "AuthorizationHeaderMalformed"


def test_chunk_signatures_chain_from_the_seed_as_aws_documents() -> None:
    # The example of the AWS S3 reference "Signature Calculations for the Authorization
    # Header: Transferring Payload in Multiple Chunks": its published seed and first
    # chunk signature, from its published key, date and 64 KiB of 'a'.
    keys = SigningKeys()
    key = keys.get("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3")
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    first = chunk_signature(
        key,
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        seed,
        hashlib.sha256(b"a" * 65536).hexdigest(),
    )
    assert first == "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    assert STREAMING_PAYLOAD.startswith("STREAMING-")


def test_signing_keys_are_derived_once_a_day() -> None:
    keys = SigningKeys()
    one = keys.get("s", "20261205", "us-east-1", "s3")
    assert keys.get("s", "20261205", "us-east-1", "s3") is one
    assert keys.get("s", "20261206", "us-east-1", "s3") != one


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), keep_slash=st.booleans())
def test_uri_encode_percent_encodes_any_text_as_quote_does(text: str, keep_slash: bool) -> None:
    # Plain text skips quote(); whatever the text, the answer is quote's.
    expected = quote(text, safe="-_.~/" if keep_slash else "-_.~")
    assert uri_encode(text, keep_slash=keep_slash) == expected


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
def test_hmac_from_kept_pads_is_the_standard_hmac_for_any_key_length(length: int) -> None:
    key = bytes(range(256))[:length]
    for text in ("", "AWS4-HMAC-SHA256\n20261206T000000Z", "é" * 100):
        expected = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
        assert _hmac_hex(key, text) == expected
        assert _hmac_hex(key, text) == expected  # the kept pads are not consumed by use


def test_a_verified_request_never_shows_its_signing_key() -> None:
    key = b"\x8f" * 32
    verified = Verified("AKID", EMPTY_SHA256, "20261206T000000Z", "scope", "sig", key, False)
    shown = repr(verified)
    assert "AKID" in shown
    assert repr(key)[2:-1] not in shown and key.hex() not in shown
