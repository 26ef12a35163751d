"""The lean S3 request path: botocore's signer and credentials, ``http.client`` transport.

botocore's client pipeline (parameter validation, serialisation, event hooks, parsing)
costs 1-2 ms of CPU per small request; an S3 request needs far less. This client keeps
the parts that must stay maintained (credential resolution and refresh, SigV4 signing)
and replaces the rest: requests are built by hand, sent over a pool of kept-alive
connections, and answers are parsed with ``xml.etree``.

Its methods take and return the same shapes as botocore's client (``Key=``,
``ContentLength``, ``Contents``...), and a service error is raised as botocore's
``ClientError`` with the S3 code and HTTP status, so the s3 service's error mapping
(``_errors.map_error``) gives identical storager errors on either path. Connection
failures that outlast the retries become botocore's ``EndpointConnectionError`` or
``ReadTimeoutError``.

Payload signing: over https the body is sent as ``UNSIGNED-PAYLOAD`` (TLS protects it).
Over plain http, bodies up to ``SIGNED_PAYLOAD_MAX`` are hashed with SHA-256 and signed,
as botocore does (4 KiB costs ~4 us); larger ones (multipart parts) go unsigned, because
hashing costs ~0.8 ms per MiB of one core here (an 8 MiB part: 6.6 ms), which a 2-core
machine pays out of its upload throughput. SeaweedFS and moto accept both.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http
import logging
import random
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote, unquote_plus, urlsplit

import botocore.session
from botocore.auth import SIGNED_HEADERS_BLACKLIST, UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from storager._retry_policy import RetryPolicy
from storager.services.s3._lean_http import TRANSPORT_ERRORS, ConnectionPool, Response

__all__ = ["DEFAULT_RETRY", "LeanClient", "encode_key"]

logger = logging.getLogger("storager.services.s3.lean")

T = TypeVar("T")

#: Largest body hashed for a signed payload over plain http.
SIGNED_PAYLOAD_MAX = 1 << 20
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestThrottled",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalError",
    }
)


def encode_key(key: str) -> str:
    """Percent-encode a key for a request path, as SigV4 canonicalises it.

    Every byte of the UTF-8 key but the unreserved ``A-Z a-z 0-9 - _ . ~`` and ``/``
    is encoded, so ``+ = ? # & @ %`` and spaces reach the server as themselves.
    """
    return quote(key, safe="/~")


def _q(value: str) -> str:
    return quote(value, safe="-_.~")


#: The lean path's default: a few quick attempts with full jitter, within 30 s.
DEFAULT_RETRY = RetryPolicy(max_attempts=4, jitter=1.0)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status == 429 or error.get("Code") in _THROTTLE_CODES
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False  # a certificate that does not verify will not verify on a retry
    return isinstance(exc, TRANSPORT_ERRORS)


class _SigningRequest:
    """What botocore's signer reads and writes on a request, without ``AWSRequest``.

    ``AWSRequest`` keeps its headers in an email.message-based map; the signer only
    needs ``method``, ``url``, ``params``, ``context`` and a mutable ``headers`` mapping,
    and the headers it adds (``X-Amz-Date``, ``X-Amz-Content-SHA256``, ``Authorization``,
    a session token) never collide with the lower-case names this client sets.
    """

    __slots__ = ("context", "headers", "method", "params", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], payload: str) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {"payload_hash": payload}


class _SignedHeaders(dict[str, str]):
    """The headers to sign, in the interface botocore's canonical_headers reads."""

    def get_all(self, name: str) -> list[str]:
        return [self[name]]


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer, told the payload hash instead of hashing a body.

    The signing key depends only on the secret, the day, the region and the service, so
    it is derived once a day instead of with four HMACs per request (~10 us); the
    signature itself is botocore's.
    """

    _day_key: tuple[str, bytes] | None = None

    def __init__(self, credentials: ReadOnlyCredentials, region: str) -> None:
        super().__init__(credentials, "s3", region)
        self.region = region

    def payload(self, request: AWSRequest) -> str:
        value: str = request.context["payload_hash"]
        return value

    def headers_to_sign(self, request: AWSRequest) -> Any:
        # botocore's own selection, into a plain dict instead of its email.message-based
        # HTTPHeaders (~15 us a request). Our requests never repeat a header name, so
        # get_all has one value; the signature test holds this to botocore's output.
        selected = _SignedHeaders()
        for name, value in request.headers.items():
            lname = name.lower()
            if lname not in SIGNED_HEADERS_BLACKLIST:
                selected[lname] = value
        if "host" not in selected:
            selected["host"] = str(urlsplit(str(request.url)).netloc)
        return selected

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        day = request.context["timestamp"][0:8]
        cached = self._day_key
        if cached is None or cached[0] != day:
            key = f"AWS4{self.credentials.secret_key}".encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            cached = self._day_key = (day, key)
        return hmac.new(cached[1], string_to_sign.encode(), hashlib.sha256).hexdigest()


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _fields(elem: ET.Element) -> dict[str, str]:
    return {_local(child.tag): child.text or "" for child in elem}


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class LeanClient:
    """S3 requests for one bucket, signed by botocore, sent over a connection pool.

    Args:
        bucket: The bucket every request addresses.
        endpoint: ``http(s)://host[:port]``; None for AWS's regional endpoint.
        region: The signing region; None asks botocore's configuration (environment,
            config files), then falls back to ``us-east-1``.
        credentials: Static credentials (the ``credential`` pair); None resolves them
            through botocore's chain, refreshing those that expire.
        force_path_style: Path-style addressing; None chooses path style for a custom
            endpoint and virtual-host style for AWS.
        max_connections: Connections kept alive for reuse.
        timeout: Seconds to wait for a connection or an answer.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None,
        region: str | None,
        credentials: tuple[str, str] | None,
        force_path_style: bool | None,
        max_connections: int = 16,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        session: Any = None
        if credentials is not None:
            self._credentials: Any = Credentials(*credentials)
        else:
            session = botocore.session.get_session()
            self._credentials = session.get_credentials()
        if region is None:
            session = session or botocore.session.get_session()
            region = session.get_config_variable("region")
        self.region = region or "us-east-1"
        self.bucket = bucket
        url = urlsplit(endpoint or f"https://s3.{self.region}.amazonaws.com")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("endpoint must be http(s)://host[:port]")
        self.https = url.scheme == "https"
        path_style = endpoint is not None if force_path_style is None else force_path_style
        host = url.hostname
        if not path_style:
            host = f"{bucket}.{host}"
        default_port = 443 if self.https else 80
        self._host_header = host if url.port in (None, default_port) else f"{host}:{url.port}"
        base = url.path.rstrip("/")
        self._prefix = f"{base}/{_q(bucket)}/" if path_style else f"{base}/"
        # The endpoint names no secret; it is the only thing error messages show.
        self.endpoint_url = f"{url.scheme}://{self._host_header}"
        self._origin = f"{url.scheme}://{self._host_header}"
        self.pool = ConnectionPool(
            url.scheme, host, url.port, max_idle=max_connections, timeout=timeout
        )
        self.retry = retry or DEFAULT_RETRY
        self._signer_lock = threading.Lock()
        self._signer: tuple[object, _Signer] | None = None

    def __repr__(self) -> str:
        return f"<LeanClient {self.endpoint_url} bucket={self.bucket!r}>"

    def close(self) -> None:
        self.pool.close()

    # -- signing and sending ------------------------------------------------------------

    def _signer_for_now(self) -> _Signer:
        if self._credentials is None:
            raise NoCredentialsError()
        # Refreshable credentials refresh here when close to expiry.
        frozen: ReadOnlyCredentials = self._credentials.get_frozen_credentials()
        cached = self._signer
        if cached is not None and cached[0] == frozen:
            return cached[1]
        signer = _Signer(frozen, self.region)
        with self._signer_lock:
            self._signer = (frozen, signer)
        return signer

    def _payload_hash(self, body: bytes | bytearray | memoryview | None) -> str:
        if not body:
            return _EMPTY_SHA256
        if self.https or len(body) > SIGNED_PAYLOAD_MAX:
            return UNSIGNED_PAYLOAD
        return hashlib.sha256(body).hexdigest()

    def _send(
        self,
        method: str,
        key: str,
        query: str,
        headers: dict[str, str],
        body: bytes | bytearray | memoryview | None,
    ) -> Response:
        target = self._prefix + encode_key(key) + (f"?{query}" if query else "")
        headers["host"] = self._host_header
        request = _SigningRequest(method, self._origin + target, headers, self._payload_hash(body))
        self._signer_for_now().add_auth(cast(AWSRequest, request))
        response = self.pool.request(method, target, headers, body)
        if response.status >= 300:
            raise self._error(response, method)
        return response

    def _error(self, response: Response, method: str) -> ClientError:
        code, message = str(response.status), http_reason(response.status)
        if response.body:
            try:
                fields = _fields(ET.fromstring(response.body))
                code = fields.get("Code") or code
                message = fields.get("Message") or message
            except ET.ParseError:
                pass
        return client_error(code, message, response.status, method)

    def call(
        self,
        method: str,
        key: str,
        query: str = "",
        headers: dict[str, str] | None = None,
        body: bytes | bytearray | memoryview | None = None,
    ) -> Response:
        """Send a request, retrying throttling, 5xx and connection failures."""
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                return self._send(method, key, query, dict(headers or {}), body)
            except Exception as exc:
                attempt += 1
                wait = self.retry.backoff(attempt, random.random())
                out_of_budget = time.monotonic() - started + wait > self.retry.budget
                if attempt >= self.retry.max_attempts or out_of_budget or not _retryable(exc):
                    if isinstance(exc, ClientError):
                        raise
                    if isinstance(exc, TimeoutError):
                        raise ReadTimeoutError(endpoint_url=self.endpoint_url) from exc
                    if isinstance(exc, TRANSPORT_ERRORS):
                        raise EndpointConnectionError(endpoint_url=self.endpoint_url) from exc
                    raise
                logger.debug(
                    "retrying %s after %s (attempt %d)", method, type(exc).__name__, attempt
                )
                time.sleep(wait)

    # -- the operations, in botocore's shapes ------------------------------------------

    def get_object(
        self, Key: str, Range: str | None = None, IfMatch: str | None = None
    ) -> dict[str, Any]:
        headers = {}
        if Range is not None:
            headers["range"] = Range
        if IfMatch is not None:
            headers["if-match"] = IfMatch
        response = self.call("GET", Key, headers=headers)
        result = _head_fields(response.headers)
        result["Body"] = response.body
        return result

    def head_object(self, Key: str, IfMatch: str | None = None) -> dict[str, Any]:
        headers = {"if-match": IfMatch} if IfMatch is not None else None
        return _head_fields(self.call("HEAD", Key, headers=headers).headers)

    def put_object(
        self, Key: str, Body: bytes | bytearray | memoryview, **kwargs: Any
    ) -> dict[str, Any]:
        response = self.call("PUT", Key, headers=_put_headers(kwargs), body=Body)
        return {"ETag": response.headers.get("etag")}

    def delete_object(self, Key: str) -> dict[str, Any]:
        self.call("DELETE", Key)
        return {}

    def list_objects_v2(
        self,
        Prefix: str = "",
        Delimiter: str | None = None,
        MaxKeys: int | None = None,
        ContinuationToken: str | None = None,
    ) -> dict[str, Any]:
        # Sorted, as the canonical query string must be.
        params = {"encoding-type": "url", "list-type": "2", "prefix": Prefix}
        if Delimiter is not None:
            params["delimiter"] = Delimiter
        if MaxKeys is not None:
            params["max-keys"] = str(MaxKeys)
        if ContinuationToken is not None:
            params["continuation-token"] = ContinuationToken
        query = "&".join(f"{k}={_q(v)}" for k, v in sorted(params.items()))
        root = ET.fromstring(self.call("GET", "", query).body)
        contents: list[dict[str, Any]] = []
        prefixes: list[dict[str, str]] = []
        result: dict[str, Any] = {"Contents": contents, "CommonPrefixes": prefixes}
        # Tags compared with their namespace, and fields read with findtext (C code): a
        # 1,000-key page is parsed in about half the time of a dict per entry.
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        t_contents, t_key, t_size = ns + "Contents", ns + "Key", ns + "Size"
        t_etag, t_modified, t_class = ns + "ETag", ns + "LastModified", ns + "StorageClass"
        for child in root:
            full = child.tag
            if full == t_contents:
                key = child.findtext(t_key) or ""
                item: dict[str, Any] = {
                    "Key": unquote_plus(key) if "%" in key or "+" in key else key,
                    "Size": int(child.findtext(t_size) or 0),
                    "ETag": child.findtext(t_etag),
                    "LastModified": _iso(child.findtext(t_modified)),
                }
                storage_class = child.findtext(t_class)
                if storage_class:
                    item["StorageClass"] = storage_class
                contents.append(item)
                continue
            tag = full[len(ns) :] if ns and full.startswith(ns) else _local(full)
            if tag == "CommonPrefixes":
                prefixes.append({"Prefix": unquote_plus(_fields(child).get("Prefix", ""))})
            elif tag == "IsTruncated":
                result["IsTruncated"] = (child.text or "").strip() == "true"
            elif tag == "NextContinuationToken":
                result["NextContinuationToken"] = child.text
            elif tag == "KeyCount":
                result["KeyCount"] = int(child.text or 0)
        return result

    def create_multipart_upload(self, Key: str, **kwargs: Any) -> dict[str, Any]:
        response = self.call("POST", Key, "uploads=", headers=_put_headers(kwargs))
        return {"UploadId": _fields(ET.fromstring(response.body)).get("UploadId")}

    def upload_part(
        self, Key: str, UploadId: str, PartNumber: int, Body: bytes | bytearray | memoryview
    ) -> dict[str, Any]:
        query = f"partNumber={PartNumber}&uploadId={_q(UploadId)}"
        response = self.call("PUT", Key, query, body=Body)
        return {"ETag": response.headers.get("etag")}

    def complete_multipart_upload(
        self, Key: str, UploadId: str, MultipartUpload: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        parts = "".join(
            f"<Part><PartNumber>{int(p['PartNumber'])}</PartNumber>"
            f"<ETag>{_xml_text(str(p['ETag']))}</ETag></Part>"
            for p in MultipartUpload["Parts"]
        )
        body = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{parts}</CompleteMultipartUpload>'.encode()
        headers = _put_headers(kwargs)
        response = self.call("POST", Key, f"uploadId={_q(UploadId)}", headers=headers, body=body)
        root = ET.fromstring(response.body)
        if _local(root.tag) == "Error":
            # S3 may answer 200 and report the failure in the body.
            fields = _fields(root)
            raise client_error(fields.get("Code", ""), fields.get("Message", ""), 500, "POST")
        return {"ETag": _fields(root).get("ETag")}

    def abort_multipart_upload(self, Key: str, UploadId: str) -> dict[str, Any]:
        self.call("DELETE", Key, f"uploadId={_q(UploadId)}")
        return {}

    def list_parts(self, Key: str, UploadId: str, PartNumberMarker: int = 0) -> dict[str, Any]:
        query = f"part-number-marker={int(PartNumberMarker)}&uploadId={_q(UploadId)}"
        root = ET.fromstring(self.call("GET", Key, query).body)
        parts: list[dict[str, Any]] = []
        result: dict[str, Any] = {"Parts": parts}
        for child in root:
            tag = _local(child.tag)
            if tag == "Part":
                f = _fields(child)
                parts.append(
                    {
                        "PartNumber": int(f.get("PartNumber") or 0),
                        "Size": int(f.get("Size") or 0),
                        "ETag": f.get("ETag", ""),
                    }
                )
            elif tag == "IsTruncated":
                result["IsTruncated"] = (child.text or "").strip() == "true"
            elif tag == "NextPartNumberMarker":
                result["NextPartNumberMarker"] = int(child.text or 0)
        return result

    def delete_objects(self, keys: list[str]) -> list[tuple[str, str]]:
        """Delete up to 1,000 keys in one request; return ``(key, code)`` of failures."""
        items = "".join(f"<Object><Key>{_xml_text(k)}</Key></Object>" for k in keys)
        body = f"<Delete><Quiet>true</Quiet>{items}</Delete>".encode()
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = self.call("POST", "", "delete=", headers={"content-md5": md5}, body=body)
        failed = []
        for child in ET.fromstring(response.body):
            if _local(child.tag) == "Error":
                f = _fields(child)
                failed.append((f.get("Key", ""), f.get("Code", "")))
        return failed

    # Methods the s3 service calls that this client implements.
    METHODS = frozenset(
        {
            "get_object",
            "head_object",
            "put_object",
            "delete_object",
            "list_objects_v2",
            "create_multipart_upload",
            "upload_part",
            "complete_multipart_upload",
            "abort_multipart_upload",
            "list_parts",
        }
    )

    def dispatch(self, method: str) -> Callable[..., dict[str, Any]]:
        fn: Callable[..., dict[str, Any]] = getattr(self, method)
        return fn


def client_error(code: str, message: str, status: int, method: str) -> ClientError:
    """Return botocore's ClientError for an S3 error answer, as botocore would raise it."""
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, method)


def http_reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _put_headers(kwargs: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        if name == "Metadata":
            for meta_key, meta_value in value.items():
                headers[f"x-amz-meta-{meta_key.lower()}"] = str(meta_value)
        elif name in _HEADER_OF:
            headers[_HEADER_OF[name]] = str(value)
        else:
            raise TypeError(f"unsupported parameter {name}")
    return headers


_HEADER_OF = {
    "ContentType": "content-type",
    "ContentMD5": "content-md5",
    "StorageClass": "x-amz-storage-class",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "IfMatch": "if-match",
    "IfNoneMatch": "if-none-match",
}


def _head_fields(headers: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ContentLength": int(headers.get("content-length") or 0),
        "ETag": headers.get("etag"),
        "Metadata": {k[11:]: v for k, v in headers.items() if k.startswith("x-amz-meta-")},
    }
    if "content-type" in headers:
        result["ContentType"] = headers["content-type"]
    if "content-range" in headers:
        result["ContentRange"] = headers["content-range"]
    modified = headers.get("last-modified")
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            result["LastModified"] = parsedate_to_datetime(modified)
    for header, field in (
        ("x-amz-storage-class", "StorageClass"),
        ("x-amz-server-side-encryption", "ServerSideEncryption"),
        ("x-amz-version-id", "VersionId"),
    ):
        if header in headers:
            result[field] = headers[header]
    return result
