"""AWS Signature Version 4 for S3: one canonicalisation, for signing and for verifying.

The s3 client signs its requests with it and the gateway verifies the requests it
receives with it, so both sides canonicalise a request the same way by construction
(the test holds both to botocore's signer, byte for byte).

The canonical request (the AWS SigV4 reference, "Create a canonical request")::

    METHOD, CanonicalURI, CanonicalQuery, CanonicalHeaders + "\\n", SignedHeaders,
    PayloadHash  (joined by "\\n")

- the URI is the decoded path, percent-encoded except ``A-Za-z0-9-._~`` and ``/``, never
  normalised (S3 keys may hold ``//`` and ``..``);
- the query is every name and value decoded, then percent-encoded except
  ``A-Za-z0-9-._~``, sorted by encoded name then value, ``name=value`` joined by ``&``;
- each signed header is ``name:value``, names lower-case and sorted, a value's inner
  whitespace runs collapsed to one space and its ends trimmed, repeated headers joined by
  ``,``.

The signing key depends only on the secret, the day, the region and the service: it is
derived once a day (:class:`SigningKeys`), so a request costs two SHA-256 and one HMAC.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from storager._errors import PermissionDeniedError

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_PAYLOAD",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "SigV4Error",
    "SigningKeys",
    "Verified",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "chunk_signature",
    "parse_query",
    "presign",
    "sign_headers",
    "trailer_signature",
    "uri_encode",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: How far a request's clock may be from ours (S3's own limit).
MAX_SKEW = timedelta(minutes=15)
#: The longest a presigned URL may live (S3's own limit: seven days).
MAX_EXPIRES = 7 * 24 * 3600
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_SPECIAL_PAYLOADS = frozenset(
    {
        UNSIGNED_PAYLOAD,
        STREAMING_PAYLOAD,
        STREAMING_UNSIGNED_TRAILER,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }
)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Text ``uri_encode`` leaves as it is (most keys and query values): no call to quote.
_PLAIN = re.compile(r"[A-Za-z0-9\-._~]*")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/]*")


@dataclass(frozen=True)
class Credentials:
    """An access key, its secret and, for temporary credentials, a session token."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        # Never the secret or the token.
        return f"Credentials(access_key={self.access_key!r})"


class SigV4Error(PermissionDeniedError):
    """A request whose signature does not verify; ``code`` is the S3 error code.

    The message never holds a secret, a signature or a signing key.
    """

    def __init__(self, code: str, reason: str, path: str = "") -> None:
        self.code = code
        super().__init__("authenticate", "s3", path, reason)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.code, self.reason, self.path))


class SigningKeys:
    """Signing keys derived once per (secret, day, region, service), thread-safe."""

    def __init__(self, limit: int = 64) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, secret: str, day: str, region: str, service: str) -> bytes:
        """Return the signing key of ``secret`` for the day (``YYYYMMDD``)."""
        index = (secret, day, region, service)
        key = self._keys.get(index)
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (day, region, service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            with self._lock:
                if len(self._keys) >= self._limit:
                    self._keys.clear()
                self._keys[index] = key
        return key


_KEYS = SigningKeys()


# -- canonical forms -------------------------------------------------------------------


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """Percent-encode all but ``A-Za-z0-9-._~`` (and ``/`` when ``keep_slash``)."""
    if (_PLAIN_PATH if keep_slash else _PLAIN).fullmatch(text):
        return text
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Split a raw query string into decoded ``(name, value)`` pairs, in order.

    ``+`` stays a plus sign: SigV4 clients encode a space as ``%20``.
    """
    pairs: list[tuple[str, str]] = []
    if raw:
        for part in raw.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The canonical query of decoded ``(name, value)`` pairs."""
    if not pairs:
        return ""
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def _trimmed(value: str) -> str:
    if "  " not in value and value.isprintable() and value == value.strip():
        return value  # nothing to collapse: most values, and the split costs more
    return " ".join(value.split())


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> str:
    """``name:value`` lines of the signed headers; ``headers`` keyed by lower-case name."""
    return "".join(f"{name}:{_trimmed(headers.get(name, ''))}\n" for name in signed)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    """The canonical request of a decoded ``path`` and decoded ``query`` pairs."""
    return "\n".join(
        (
            method.upper(),
            uri_encode(path, keep_slash=True),
            canonical_query(query),
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        )
    )


def _string_to_sign(timestamp: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _hmac_hex(key: bytes, text: str) -> str:
    # HMAC-SHA256 from the key's two padded SHA-256 states, kept per key: a copy of each
    # instead of hashing the pads again, 0.7 us against 1.9 us for hmac.digest (a
    # signing key lives a day; a request signs or checks one or more texts under it).
    inner, outer = _padded(key)
    h = inner.copy()
    h.update(text.encode("utf-8"))
    o = outer.copy()
    o.update(h.digest())
    return o.hexdigest()


@functools.lru_cache(maxsize=64)
def _padded(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """The SHA-256 states after HMAC's inner and outer pads of ``key`` (RFC 2104)."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


def chunk_signature(
    signing_key: bytes, timestamp: str, scope: str, previous: str, chunk_sha256: str
) -> str:
    """The signature of one ``aws-chunked`` chunk, chained to the previous one."""
    text = f"{ALGORITHM}-PAYLOAD\n{timestamp}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{chunk_sha256}"
    return _hmac_hex(signing_key, text)


def trailer_signature(
    signing_key: bytes, timestamp: str, scope: str, previous: str, trailer: bytes
) -> str:
    """The signature of an ``aws-chunked`` body's trailer, chained to the last chunk's.

    ``trailer`` is the trailing header lines as sent, each ``name:value\\n``.
    """
    digest = hashlib.sha256(trailer).hexdigest()
    text = f"{ALGORITHM}-TRAILER\n{timestamp}\n{scope}\n{previous}\n{digest}"
    return _hmac_hex(signing_key, text)


# -- signing (client side) ---------------------------------------------------------------


def _stamp(now: datetime | None) -> str:
    if now is None:
        # time.strftime of gmtime: ~1 us, against ~4 us for datetime.now(UTC).strftime.
        return time.strftime(_TIMESTAMP, time.gmtime())
    return now.strftime(_TIMESTAMP)


def sign_headers(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: dict[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    *,
    service: str = "s3",
    now: datetime | None = None,
    keys: SigningKeys = _KEYS,
) -> None:
    """Sign a request in place: add ``x-amz-date``, ``x-amz-content-sha256``, the session
    token and ``authorization`` to ``headers``.

    ``headers`` are keyed by lower-case name and must hold ``host``; every one of them is
    signed. ``path`` and ``query`` are decoded (the encoding is the signer's job).
    """
    timestamp = _stamp(now)
    headers["x-amz-date"] = timestamp
    headers["x-amz-content-sha256"] = payload_hash
    if credentials.token is not None:
        headers["x-amz-security-token"] = credentials.token
    headers.pop("authorization", None)
    signed = sorted(headers)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    request = canonical_request(method, path, query, headers, signed, payload_hash)
    key = keys.get(credentials.secret_key, timestamp[:8], region, service)
    signature = _hmac_hex(key, _string_to_sign(timestamp, scope, request))
    headers["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )


def presign(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    host: str,
    credentials: Credentials,
    region: str,
    expires: int,
    *,
    service: str = "s3",
    now: datetime | None = None,
    keys: SigningKeys = _KEYS,
) -> str:
    """Return the query string of a presigned URL (the request's own query first).

    Only ``host`` is signed, and the payload is ``UNSIGNED-PAYLOAD``.
    """
    if not 1 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be 1 to {MAX_EXPIRES} seconds")
    timestamp = _stamp(now)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
        ("X-Amz-Date", timestamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.token is not None:
        auth.append(("X-Amz-Security-Token", credentials.token))
    pairs = [*query, *auth]
    request = canonical_request(method, path, pairs, {"host": host}, ["host"], UNSIGNED_PAYLOAD)
    key = keys.get(credentials.secret_key, timestamp[:8], region, service)
    signature = _hmac_hex(key, _string_to_sign(timestamp, scope, request))
    encoded = "&".join(f"{uri_encode(n)}={uri_encode(v)}" for n, v in pairs)
    return f"{encoded}&X-Amz-Signature={signature}"


# -- verifying (server side) --------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """A request whose signature verified.

    ``payload_hash`` is what the request declared for its body: a hex SHA-256 the body
    must still match, or one of the special values (``UNSIGNED-PAYLOAD``, the streaming
    forms); for ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` the chunks chain to
    ``signature`` with :func:`chunk_signature` under ``signing_key``.
    """

    access_key: str
    payload_hash: str
    timestamp: str
    scope: str
    signature: str
    signing_key: bytes = field(repr=False)  # derived from the secret: never shown
    presigned: bool


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """Return ``(credential, signed_headers, signature)`` from an Authorization header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error("AuthorizationHeaderMalformed", f"the algorithm must be {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, text = part.strip().partition("=")
        if not sep or name in fields:
            raise SigV4Error(
                "AuthorizationHeaderMalformed", "the authorization header is malformed"
            )
        fields[name] = text.strip()
    try:
        return fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        raise SigV4Error(
            "AuthorizationHeaderMalformed",
            "the authorization header needs Credential, SignedHeaders and Signature",
        ) from None


# Requests close together share their second: the last few are remembered.
@functools.lru_cache(maxsize=16)
def _parse_time(timestamp: str) -> datetime:
    # By hand: every request verified parses one, and strptime is the slow way.
    t = timestamp
    digits = t[:8] + t[9:15]
    if len(t) != 16 or t[8] != "T" or t[15] != "Z" or not (digits.isascii() and digits.isdigit()):
        raise SigV4Error("AccessDenied", "the request date is not YYYYMMDDTHHMMSSZ")
    try:
        return datetime(
            int(t[0:4]),
            int(t[4:6]),
            int(t[6:8]),
            int(t[9:11]),
            int(t[11:13]),
            int(t[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise SigV4Error("AccessDenied", "the request date is not a valid time") from None


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    *,
    region: str | None = None,
    service: str = "s3",
    now: datetime | None = None,
    keys: SigningKeys = _KEYS,
) -> Verified:
    """Verify a request's SigV4 signature, in the Authorization header or the query.

    Args:
        method: The request method.
        raw_path: The path as received, still percent-encoded.
        raw_query: The query string as received.
        headers: Lower-case names; repeated headers already joined with ``,``.
        secret_for: The secret of an access key, None for an unknown one.
        region: The region the request must be scoped to; None accepts any.
        now: The server's time (tests set it).

    Raises:
        SigV4Error: With the S3 code (``SignatureDoesNotMatch``, ``RequestTimeTooSkewed``,
            ``InvalidAccessKeyId``, ``AuthorizationHeaderMalformed``, ``AccessDenied``).
    """
    path = unquote(raw_path)
    query = parse_query(raw_query)
    now = now or datetime.now(UTC)
    names = {name for name, _ in query}
    if "authorization" in headers:
        if "X-Amz-Signature" in names:
            raise SigV4Error("InvalidArgument", "only one auth mechanism is allowed", path)
        credential, signed_text, signature = _parse_authorization(headers["authorization"])
        timestamp = headers.get("x-amz-date", "")
        if not timestamp:
            raise SigV4Error("AccessDenied", "the x-amz-date header is missing", path)
        payload_hash = headers.get("x-amz-content-sha256", "")
        if not payload_hash:
            raise SigV4Error("InvalidRequest", "the x-amz-content-sha256 header is missing", path)
        if payload_hash not in _SPECIAL_PAYLOADS and not _HEX_SHA256.fullmatch(payload_hash):
            raise SigV4Error("InvalidArgument", "x-amz-content-sha256 must be a hex SHA-256", path)
        signed_query = query
        presigned = False
    elif "X-Amz-Signature" in names:
        fields = dict(query)
        if fields.get("X-Amz-Algorithm") != ALGORITHM:
            raise SigV4Error("AuthorizationQueryParametersError", "X-Amz-Algorithm", path)
        try:
            credential = fields["X-Amz-Credential"]
            signed_text = fields["X-Amz-SignedHeaders"]
            signature = fields["X-Amz-Signature"]
            timestamp = fields["X-Amz-Date"]
            expires = int(fields["X-Amz-Expires"])
        except (KeyError, ValueError):
            raise SigV4Error(
                "AuthorizationQueryParametersError",
                "a presigned URL needs X-Amz-Credential, -SignedHeaders, -Signature, "
                "-Date and a numeric -Expires",
                path,
            ) from None
        if not 1 <= expires <= MAX_EXPIRES:
            raise SigV4Error(
                "AuthorizationQueryParametersError",
                f"X-Amz-Expires must be 1 to {MAX_EXPIRES} seconds",
                path,
            )
        if now > _parse_time(timestamp) + timedelta(seconds=expires):
            raise SigV4Error("AccessDenied", "the presigned URL has expired", path)
        payload_hash = UNSIGNED_PAYLOAD
        signed_query = [(n, v) for n, v in query if n != "X-Amz-Signature"]
        presigned = True
    else:
        raise SigV4Error("AccessDenied", "the request is not signed", path)

    access_key, _, scope = credential.partition("/")
    scope_parts = scope.split("/")
    if len(scope_parts) != 4 or scope_parts[3] != "aws4_request":
        raise SigV4Error("AuthorizationHeaderMalformed", "the credential scope is malformed", path)
    day, scope_region, scope_service, _ = scope_parts
    if day != timestamp[:8]:
        raise SigV4Error(
            "AuthorizationHeaderMalformed", "the credential scope's date is not the request's", path
        )
    if scope_service != service or (region is not None and scope_region != region):
        raise SigV4Error(
            "AuthorizationHeaderMalformed",
            f"the credential scope must be for {service} in {region or 'a region'}",
            path,
        )
    moment = _parse_time(timestamp)
    if not presigned and abs(now - moment) > MAX_SKEW:
        raise SigV4Error(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
            path,
        )
    if presigned and moment - now > MAX_SKEW:
        raise SigV4Error("RequestTimeTooSkewed", "the presigned URL is dated in the future", path)

    signed = signed_text.split(";")
    if signed != sorted(set(signed)) or "host" not in signed:
        raise SigV4Error(
            "AuthorizationHeaderMalformed", "SignedHeaders must be sorted and include host", path
        )
    unsigned = [n for n in headers if n.startswith("x-amz-") and n not in signed]
    if unsigned and not presigned:
        raise SigV4Error(
            "AccessDenied", f"headers present in the request were not signed: {unsigned[0]}", path
        )
    missing = [n for n in signed if n not in headers]
    if missing:
        raise SigV4Error("AccessDenied", f"a signed header is missing: {missing[0]}", path)

    secret = secret_for(access_key)
    if secret is None:
        raise SigV4Error("InvalidAccessKeyId", "the access key does not exist", path)
    request = canonical_request(method, path, signed_query, headers, signed, payload_hash)
    signing_key = keys.get(secret, day, scope_region, service)
    expected = _hmac_hex(signing_key, _string_to_sign(timestamp, scope, request))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SigV4Error(
            "SignatureDoesNotMatch",
            "the request signature does not match the one computed with the secret",
            path,
        )
    return Verified(access_key, payload_hash, timestamp, scope, signature, signing_key, presigned)
