"""The default transport: S3 requests built here, signed by ``storager._sigv4``, sent
over kept-alive connections (``_connections``).

One request, top-down: :meth:`HttpTransport._send` takes the method, key, query,
headers and body; signs them (``sign_headers``: the signing key derived once a day, two
SHA-256 and one HMAC per request); sends them on a pooled connection; and returns the
answer, or raises the storager error it means (``_errors``), with the S3 answer or the
socket error as ``__cause__``. Each request goes through the one retry layer
(``_retries``).

Payload signing: over https a body is sent as ``UNSIGNED-PAYLOAD`` (TLS protects it).
Over plain http, bodies up to ``SIGNED_PAYLOAD_MAX`` are hashed and signed; larger ones
(multipart parts) go unsigned, because hashing costs ~0.8 ms per MiB of one core, taken
from upload throughput. SeaweedFS, moto and S3 accept both.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Executor, Future
from datetime import UTC, datetime

from storager._errors import StorageError
from storager._retry_policy import RetryPolicy
from storager._sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, sign_headers, uri_encode
from storager.services.s3._address import Address
from storager.services.s3._connections import (
    TRANSPORT_ERRORS,
    BodyStream,
    ConnectionPool,
    Response,
    UnsafeRequestError,
)
from storager.services.s3._credentials import CredentialSource
from storager.services.s3._errors import error_for, unreachable
from storager.services.s3._headers import META_PREFIX
from storager.services.s3._retries import REQUEST_RETRY, retrying
from storager.services.s3._transport import Got, Head, ListPage, S3Answer, UploadedPart
from storager.services.s3._xml import (
    complete_body,
    delete_body,
    next_token,
    parse_delete_failures,
    parse_fields,
    parse_list_page,
    parse_parts,
)

__all__ = ["HttpTransport"]

#: Largest body hashed for a signed payload over plain http.
SIGNED_PAYLOAD_MAX = 1 << 20
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_SYSTEM_HEADERS = {
    "x-amz-storage-class": "storage_class",
    "x-amz-server-side-encryption": "server_side_encryption",
    "x-amz-version-id": "version_id",
}
_NO_SYSTEM: Mapping[str, object] = {}
#: Failures with no answer: the connection failed, or the request was refused unsent.
_UNANSWERED: tuple[type[BaseException], ...] = (*TRANSPORT_ERRORS, UnsafeRequestError)
_NO_META: Mapping[str, str] = {}
#: How long a listing waits for its next page's request to be sent before parsing:
#: a bound for when the executor's threads are all busy, never reached otherwise.
_SEND_WAIT = 0.05


def http_date(value: str | None) -> datetime | None:
    """Parse an RFC 7231 date (``Sun, 06 Nov 1994 08:49:37 GMT``) without email.utils."""
    if not value:
        return None
    try:
        _, day, month, year, clock, _ = value.split(" ")
        hour, minute, second = clock.split(":")
        return datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except (ValueError, KeyError):
        return None


def head_of(headers: Mapping[str, str]) -> Head:
    """The :class:`Head` of an answer's headers (lower-case names), in one pass."""
    meta: dict[str, str] | None = None
    system: dict[str, object] | None = None
    for name, value in headers.items():
        if name.startswith("x-amz-"):
            if name.startswith(META_PREFIX):
                if meta is None:
                    meta = {}
                meta[name[len(META_PREFIX) :]] = value
            elif name in _SYSTEM_HEADERS and value:
                if system is None:
                    system = {}
                system[_SYSTEM_HEADERS[name]] = value
    etag = headers.get("etag")
    return Head(
        int(headers.get("content-length") or 0),
        etag.strip('"') if etag else None,
        headers.get("content-type"),
        http_date(headers.get("last-modified")),
        meta or _NO_META,
        system or _NO_SYSTEM,
    )


def _total(content_range: str | None) -> int | None:
    """The object's length from ``bytes a-b/total``."""
    if content_range and "/" in content_range:
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return None


class HttpTransport:
    """S3 requests for one bucket over a pool of kept-alive connections.

    Args:
        bucket: The bucket every request addresses.
        address: Where the bucket's keys are (``Address.of``).
        region: The signing region.
        credentials: Who signs.
        max_connections: Connections kept alive for reuse.
        timeout: Seconds to wait for a connection or an answer.
    """

    def __init__(
        self,
        bucket: str,
        address: Address,
        region: str,
        credentials: CredentialSource,
        *,
        max_connections: int,
        timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.address = address
        self.region = region
        self.credentials = credentials
        self.https = address.scheme == "https"
        self.pool = ConnectionPool(
            address.scheme, address.host, address.port, max_idle=max_connections, timeout=timeout
        )
        self.retry: RetryPolicy = REQUEST_RETRY
        # 5 MiB parts, 4 uploading while the next fills: 25 MiB for any object's size.
        self.parts_in_flight = 4

    def __repr__(self) -> str:
        return f"<HttpTransport {self.address.origin} bucket={self.bucket!r}>"

    def close(self) -> None:
        self.pool.close()

    # -- one request ----------------------------------------------------------------------

    def _payload_hash(self, body: bytes | bytearray | memoryview | None) -> str:
        if not body:
            return EMPTY_SHA256
        if self.https or len(body) > SIGNED_PAYLOAD_MAX:
            return UNSIGNED_PAYLOAD
        return hashlib.sha256(body).hexdigest()

    def _send(
        self,
        op: str,
        path: str,
        method: str,
        key: str,
        query: list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | bytearray | memoryview | None = None,
        *,
        into: memoryview | None = None,
        accept: int = 0,
        sent: threading.Event | None = None,
        stream: bool = False,
    ) -> Response:
        """Sign and send one request (retried per ``self.retry``); return a 2xx answer.

        With ``stream``, a 2xx answer's body is left unread in ``Response.stream``.

        ``accept`` is one more status returned as an answer instead of raised (416).
        ``sent`` is set once the request is on the wire, or when the call ends.
        """
        query = query or []
        target = self.address.target(key, query)
        signed_path = self.address.path(key)
        payload_hash = self._payload_hash(body)

        def attempt() -> Response:
            request_headers = dict(headers) if headers else {}
            request_headers["host"] = self.address.host_header
            sign_headers(
                method,
                signed_path,
                query,
                request_headers,
                payload_hash,
                self.credentials.current(op, path),
                self.region,
            )
            response = self.pool.request(
                method, target, request_headers, body, into=into, sent=sent, stream=stream
            )
            if response.status >= 300 and response.status != accept:
                raise self._answer(response)
            return response

        try:
            return retrying(self.retry, attempt, f"{method} {op}")
        except StorageError:
            raise
        except S3Answer as exc:
            raise _noted(error_for(exc.code, exc.status, op, path, self.bucket), exc) from exc
        except _UNANSWERED as exc:
            raise _noted(unreachable(exc, op, path), exc) from exc
        finally:
            if sent is not None:
                sent.set()  # nothing more will be sent: never keep a waiter waiting

    @staticmethod
    def _answer(response: Response) -> S3Answer:
        code, message = "", ""
        if response.body:
            try:
                _, fields = parse_fields(response.body)
                code, message = fields.get("Code", ""), fields.get("Message", "")
            except Exception:  # a body that is not S3's XML: the status says it all
                pass
        return S3Answer(response.status, code or str(response.status), message)

    # -- the requests ---------------------------------------------------------------------

    def get(
        self,
        op: str,
        path: str,
        key: str,
        *,
        first: int | None = None,
        last: int | None = None,
        if_match: str | None = None,
        into: memoryview | None = None,
    ) -> Got:
        headers = {}
        if first is not None:
            headers["range"] = f"bytes={first}-{'' if last is None else last}"
        if if_match is not None:
            headers["if-match"] = if_match
        response = self._send(op, path, "GET", key, headers=headers, into=into, accept=416)
        if response.status == 416:
            return Got(b"", None, None)  # the range starts at or past the end
        answer = response.headers
        etag = answer.get("etag")
        total = _total(answer.get("content-range")) if first is not None else len(response.body)
        return Got(response.body, etag.strip('"') if etag else None, total)

    def get_stream(
        self, op: str, path: str, key: str, *, first: int, last: int, if_match: str
    ) -> BodyStream | None:
        """One GET of bytes ``first..last`` pinned to ``if_match``, its body left unread.

        None when the server did not answer with exactly that range (then read it by
        ranged GETs instead); errors as :meth:`get` raises them.
        """
        headers = {"range": f"bytes={first}-{last}", "if-match": if_match}
        response = self._send(op, path, "GET", key, headers=headers, accept=416, stream=True)
        stream = response.stream
        if stream is None:
            return None
        expected = f"bytes {first}-{last}/"
        if response.status != 206 or not (
            response.headers.get("content-range", "").startswith(expected)
            and stream.remaining == last - first + 1
        ):
            stream.close()
            return None
        return stream

    def head(self, op: str, path: str, key: str) -> Head:
        return head_of(self._send(op, path, "HEAD", key).headers)

    def put(
        self, op: str, path: str, key: str, body: bytes | bytearray, headers: Mapping[str, str]
    ) -> str | None:
        etag = self._send(op, path, "PUT", key, headers=headers, body=body).headers.get("etag")
        return etag.strip('"') if etag else None

    def delete(self, op: str, path: str, key: str) -> None:
        self._send(op, path, "DELETE", key)

    def delete_many(self, op: str, path: str, keys: Sequence[str]) -> list[tuple[str, str]]:
        body = delete_body(list(keys))
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        response = self._send(op, path, "POST", "", [("delete", "")], {"content-md5": md5}, body)
        return parse_delete_failures(response.body)

    def list_page(
        self,
        op: str,
        path: str,
        prefix: str,
        *,
        delimiter: str | None,
        token: str | None,
        max_keys: int | None = None,
    ) -> ListPage:
        return parse_list_page(self._list_body(op, path, prefix, delimiter, token, max_keys))

    def _list_body(
        self,
        op: str,
        path: str,
        prefix: str,
        delimiter: str | None,
        token: str | None,
        max_keys: int | None = None,
        sent: threading.Event | None = None,
    ) -> bytes | bytearray | memoryview:
        query = [("list-type", "2"), ("encoding-type", "url"), ("prefix", prefix)]
        if delimiter is not None:
            query.append(("delimiter", delimiter))
        if max_keys is not None:
            query.append(("max-keys", str(max_keys)))
        if token is not None:
            query.append(("continuation-token", token))
        return self._send(op, path, "GET", "", query, sent=sent).body

    def _list_ahead(
        self,
        executor: Executor,
        op: str,
        path: str,
        prefix: str,
        delimiter: str | None,
        token: str,
    ) -> Future[bytes | bytearray | memoryview]:
        """Request a page on ``executor`` and return once the request is on the wire.

        The caller parses the page before (~1 ms holding the GIL); had it started at
        once, the executor's thread would have waited for the GIL to sign and send,
        so the server would have started the next page only after the parse
        (benchmarks/S3.md, "Listing"). Waiting here costs a thread switch instead.
        """
        sent = threading.Event()
        future = executor.submit(self._list_body, op, path, prefix, delimiter, token, None, sent)
        sent.wait(_SEND_WAIT)
        return future

    def list_pages(
        self, op: str, path: str, prefix: str, *, delimiter: str | None, executor: Executor
    ) -> Generator[ListPage, None, None]:
        """Every page, the next one requested before this one is parsed.

        The next page's token is read from the raw answer with a search (``next_token``)
        and its request sent at once, so parsing a page (~4 ms for 1,000 keys) overlaps
        the server's time for the next. The parsed page's own token is the authority: a
        search that read another one (it never has) costs a request sent again.
        """
        future = executor.submit(self._list_body, op, path, prefix, delimiter, None)
        try:
            while True:
                body = future.result()
                guess = next_token(body)
                if guess is not None:
                    future = self._list_ahead(executor, op, path, prefix, delimiter, guess)
                page = parse_list_page(body)
                if page.next_token != guess:
                    future.cancel()
                    if page.next_token is not None:
                        future = executor.submit(
                            self._list_body, op, path, prefix, delimiter, page.next_token
                        )
                yield page
                if page.next_token is None:
                    return
        finally:
            future.cancel()  # a caller that stopped early: drop the page in flight

    def copy(self, op: str, path: str, src_key: str, dst_key: str) -> None:
        headers = {"x-amz-copy-source": f"{self.bucket}/{_encoded(src_key)}"}
        response = self._send(op, path, "PUT", dst_key, headers=headers)
        self._check_body(response, op, path)

    def create_multipart(self, op: str, path: str, key: str, headers: Mapping[str, str]) -> str:
        response = self._send(op, path, "POST", key, [("uploads", "")], headers)
        return parse_fields(response.body)[1].get("UploadId", "")

    def upload_part(
        self, op: str, path: str, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> str:
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        etag = self._send(op, path, "PUT", key, query, body=body).headers.get("etag", "")
        return etag.strip('"')

    def copy_part(
        self,
        op: str,
        path: str,
        src_key: str,
        key: str,
        upload_id: str,
        number: int,
        first: int,
        last: int,
    ) -> str:
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        headers = {
            "x-amz-copy-source": f"{self.bucket}/{_encoded(src_key)}",
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        response = self._send(op, path, "PUT", key, query, headers)
        return self._check_body(response, op, path).get("ETag", "").strip('"')

    def complete_multipart(
        self,
        op: str,
        path: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> str | None:
        body = complete_body(list(parts))
        response = self._send(op, path, "POST", key, [("uploadId", upload_id)], headers, body)
        return self._check_body(response, op, path).get("ETag", "").strip('"') or None

    def abort_multipart(self, op: str, path: str, key: str, upload_id: str) -> None:
        self._send(op, path, "DELETE", key, [("uploadId", upload_id)], accept=404)

    def list_parts(
        self, op: str, path: str, key: str, upload_id: str, marker: int
    ) -> tuple[list[UploadedPart], int | None]:
        query = [("part-number-marker", str(marker)), ("uploadId", upload_id)]
        return parse_parts(self._send(op, path, "GET", key, query).body)

    def _check_body(self, response: Response, op: str, path: str) -> dict[str, str]:
        """Fields of a 200 answer, which S3 may use to report a failure (copy, complete)."""
        root, fields = parse_fields(response.body)
        if root == "Error":
            answer = S3Answer(500, fields.get("Code", ""), fields.get("Message", ""))
            raise error_for(answer.code, 500, op, path, self.bucket) from answer
        return fields


def _encoded(key: str) -> str:
    return uri_encode(key, keep_slash=True)


def _noted(error: StorageError, cause: BaseException) -> StorageError:
    """Carry the retry layer's notes (how many attempts) onto the storager error."""
    for note in getattr(cause, "__notes__", ()):
        error.add_note(note)
    return error
