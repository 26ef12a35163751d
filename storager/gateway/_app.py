"""S3App: the raw ASGI application that serves stores as S3 buckets.

A request goes through four steps, all in this module: parse the path and query, answer
``/healthz`` and ``/readyz`` without auth, verify the SigV4 signature from the headers
alone (so a bad request is refused before its body is read), then route and call the
operation's handler. Whatever a handler raises becomes an S3 XML error through
:func:`~storager.gateway._errors.s3_error_for`, the one mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from storager._object import Multipart
from storager._protocols import Storager
from storager._sigv4 import SigV4Error, Verified, parse_query, verify
from storager.gateway import _listing, _multipart, _objects
from storager.gateway._access_log import log_request
from storager.gateway._asgi import (
    Message,
    Receive,
    Scope,
    Send,
    encode_headers,
    send_bytes,
    start,
)
from storager.gateway._body import ClientDisconnected
from storager.gateway._bucket import Bucket
from storager.gateway._errors import S3Error, s3_error_for
from storager.gateway._http import Request, Response
from storager.gateway._limiter import DEFAULT_THREADS, ThreadLimiter
from storager.gateway._rest import REST_PREFIX, error_response, rest
from storager.gateway._router import route
from storager.gateway._sigv2 import is_presigned_v2, verify_presigned_v2
from storager.gateway._uploads import DEFAULT_MAX_AGE, PartStore, Uploads, part_store
from storager.gateway._xml import document, element

__all__ = ["S3App"]

_log = logging.getLogger("storager.gateway")
_Handler = Callable[[Bucket, Request], Awaitable[Response]]
#: How long /readyz waits for each store.
READY_TIMEOUT = 5.0

#: Forks of this process so far, as seen in the child (an app made before a fork gives
#: its children request ids of their own).
_forks = 0


def _note_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_note_fork)


class S3App:
    """An ASGI application serving each store as an S3 bucket.

    Requests name their bucket in the path (``http://host/bucket/key``, path-style) or,
    when ``domain`` is given, in the Host header (``http://bucket.domain/key``,
    virtual-hosted style); a Host that is not a subdomain of ``domain`` is path-style.

    Args:
        buckets: Bucket name to store; keys are paths relative to the store's work_dir.
        credentials: Access key to secret; requests must be signed with one of them.
        anonymous: Accept unsigned requests too (and any access key, unchecked, when
            ``credentials`` is empty). Must be given explicitly.
        region: The region signatures must be scoped to; None accepts any.
        threads: Worker threads for store calls (the bound on concurrent store calls).
        upload_threads: Worker threads for writes that stream a request body (the bound
            on concurrent streaming uploads: each holds at most one 1 MiB batch).
        upload_max_age: Incomplete multipart uploads older than this are aborted.
        sweep_interval: Seconds between expiry sweeps (while the app's lifespan runs).
        close_stores: Close the stores when the app shuts down.
        domain: The base domain of virtual-hosted-style requests (``s3.example.com``, or
            ``localhost``); None serves path-style only.

    Example:
        >>> app = S3App({"demo": storager.open("memory://")}, credentials={"AK": "SK"})
        >>> # uvicorn.run(app, host="127.0.0.1", port=9000)
    """

    def __init__(
        self,
        buckets: Mapping[str, Storager],
        *,
        credentials: Mapping[str, str] | None = None,
        anonymous: bool = False,
        region: str | None = None,
        threads: int = DEFAULT_THREADS,
        upload_threads: int = DEFAULT_THREADS,
        upload_max_age: timedelta = DEFAULT_MAX_AGE,
        sweep_interval: float = 600.0,
        close_stores: bool = False,
        domain: str | None = None,
    ) -> None:
        if not credentials and not anonymous:
            raise ValueError("give credentials, or anonymous=True to serve without them")
        if not buckets:
            raise ValueError("serve at least one bucket")
        self._limiter = ThreadLimiter(threads)
        self._streams = ThreadLimiter(upload_threads)
        self.buckets = {
            name: Bucket(name, store, self._limiter, self._streams)
            for name, store in buckets.items()
        }
        self._credentials = dict(credentials or {})
        self._new_ids()
        self._anonymous = anonymous
        self._region = region
        self.uploads = Uploads()
        self.upload_max_age = upload_max_age
        self._sweep_interval = sweep_interval
        self._close_stores = close_stores
        self._host_suffix = f".{domain.strip('.').lower()}" if domain else None
        self._sweeper: asyncio.Task[None] | None = None

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._sweeper = asyncio.create_task(self._sweep_forever())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Stop the expiry sweep and the worker threads; close the stores if asked to."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._limiter.close()
        self._streams.close()
        if self._close_stores:
            for bucket in self.buckets.values():
                bucket.store.close()

    # -- one request ----------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        if self._ids_forks != _forks:
            self._new_ids()  # a forked child of the process that made the app
        request_id = f"{self._id_prefix}{next(self._ids):08x}"
        method = scope["method"]
        raw_path_bytes = scope.get("raw_path")
        raw_path = (
            raw_path_bytes.decode("latin-1") if raw_path_bytes else quote(scope["path"], safe="/")
        ).partition("?")[0]
        path = unquote(raw_path)
        headers: dict[str, str] = {}
        for name_bytes, value_bytes in scope["headers"]:
            name, value = name_bytes.decode("latin-1").lower(), value_bytes.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        virtual = self._virtual_bucket(headers.get("host", ""))
        if virtual is None and path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
            await self._health(path, method, send)
            return
        raw_query = scope.get("query_string", b"").decode("latin-1")
        is_rest = virtual is None and path.startswith(REST_PREFIX)
        if virtual is not None:
            bucket_name, key = virtual, path[1:]
        else:
            bucket_name, _, key = path[len(REST_PREFIX) if is_rest else 1 :].partition("/")
        query: dict[str, str] = {}
        for name, value in parse_query(raw_query):
            query.setdefault(name, value)
        body = _BodyWatch(receive, headers)
        request = Request(
            method, raw_path, raw_query, query, headers, bucket_name, key, request_id, body.receive
        )
        request.virtual_host = virtual is not None
        operation = "-"
        status = 500
        sent = 0
        try:
            if is_rest:
                operation = f"REST{method}"
                request.verified = self._authenticate(request, bearer=True)
                response = await rest(self._bucket(request), request)
            else:
                request.verified = self._authenticate(request)
                operation = route(method, bucket_name, key, query, "x-amz-copy-source" in headers)
                response = await self._dispatch(operation, request)
            status = response.status
            sent = await self._send(send, method, response, request_id)
        except ClientDisconnected:
            status = 499
        except _AnswerCut as cut:
            # The status line went out: no error answer is possible; the client sees the
            # body end short of its Content-Length.
            sent = cut.sent
            _log.warning("request %s (%s): the answer was cut: %s", request_id, operation, cut)
        except Exception as exc:
            error = s3_error_for(exc)
            if error.code == "InternalError":
                _log.exception("request %s (%s) failed", request_id, operation)
            status = error.status
            # Refused before its body was read: the rest of the body would be taken for the
            # next request on this connection (a client that sent Expect: 100-continue may
            # not send it at all), so the connection ends with this answer.
            close = [] if body.done else [("Connection", "close")]
            if is_rest and error.status != 304:
                answer = error_response(error)
                answer.body = b"" if method == "HEAD" else answer.body
                answer.headers = [*answer.headers, *close]
                sent = await self._send(send, method, answer, request_id)
            else:
                sent = await self._send_error(send, method, error, request, request_id, close)
        finally:
            log_request(
                request_id=request_id,
                method=method,
                bucket=bucket_name,
                key=key,
                operation=operation,
                status=status,
                sent=sent,
                received=_declared_length(headers),
                duration=time.perf_counter() - began,
            )

    def _new_ids(self) -> None:
        """Request ids: a random prefix per app and process, then counted (a random id per
        request cost a system call each)."""
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count()
        self._ids_forks = _forks

    def _virtual_bucket(self, host: str) -> str | None:
        """The bucket a virtual-hosted-style Host names, or None for path-style."""
        if self._host_suffix is None or not host or host.startswith("["):
            return None  # path-style only, or an IPv6 literal
        name = host.rpartition(":")[0] if ":" in host else host
        name = name.lower()
        if name.endswith(self._host_suffix) and len(name) > len(self._host_suffix):
            return name[: -len(self._host_suffix)]
        return None

    def _authenticate(self, req: Request, *, bearer: bool = False) -> Verified | None:
        token = req.headers.get("authorization", "")
        if bearer and token.startswith("Bearer "):
            given = token[len("Bearer ") :].strip().encode()
            matches = [
                hmac.compare_digest(given, secret.encode()) for secret in self._credentials.values()
            ]
            if not any(matches):
                raise S3Error("AccessDenied", "the bearer token is not a gateway secret")
            return None
        old_form = "authorization" not in req.headers and is_presigned_v2(req.query)
        signed = old_form or "authorization" in req.headers or "X-Amz-Signature" in req.query
        if not signed:
            if self._anonymous:
                return None
            raise S3Error("AccessDenied", "the request is not signed")
        if self._anonymous and not self._credentials:
            return None  # any key is accepted: nothing to verify against
        if old_form:
            # The old form signs the path-style resource whatever the addressing.
            resource = f"/{req.bucket}{req.raw_path}" if req.virtual_host else req.raw_path
            verify_presigned_v2(
                req.method,
                resource,
                parse_query(req.raw_query),
                req.headers,
                self._credentials.get,
            )
            return None  # the body of a presigned request is never signed
        try:
            return verify(
                req.method,
                req.raw_path,
                req.raw_query,
                req.headers,
                self._credentials.get,
                region=self._region,
            )
        except SigV4Error as exc:
            raise S3Error(exc.code, exc.reason) from exc

    def _bucket(self, req: Request) -> Bucket:
        bucket = self.buckets.get(req.bucket)
        if bucket is None:
            raise S3Error("NoSuchBucket", "the specified bucket does not exist")
        return bucket

    def _source(self, req: Request) -> Bucket:
        name, _ = _objects.copy_source(req)
        source = self.buckets.get(name)
        if source is None:
            raise S3Error("NoSuchBucket", "the copy source's bucket does not exist")
        return source

    async def _dispatch(self, operation: str, req: Request) -> Response:
        if operation == "ListBuckets":
            return await _listing.list_buckets(self.buckets.values())
        bucket = self._bucket(req)
        handler = _SIMPLE.get(operation)
        if handler is not None:
            return await handler(bucket, req)
        if operation == "CopyObject":
            return await _objects.copy_object(bucket, req, self._source(req))
        if operation == "UploadPartCopy":
            return await _multipart.upload_part_copy(bucket, self.uploads, req, self._source(req))
        return await _MULTIPART[operation](bucket, self.uploads, req)

    # -- answers ------------------------------------------------------------------------

    async def _send(self, send: Send, method: str, response: Response, request_id: str) -> int:
        headers = [*response.headers, ("x-amz-request-id", request_id)]
        body = response.body
        if isinstance(body, bytes):
            length = response.length if response.length is not None else len(body)
            if response.status not in (204, 304):
                headers.append(("Content-Length", str(length)))
            await send_bytes(
                send, response.status, encode_headers(headers), b"" if method == "HEAD" else body
            )
            return 0 if method == "HEAD" else len(body)
        if response.length is not None:
            headers.append(("Content-Length", str(response.length)))
        await start(send, response.status, encode_headers(headers))
        sent = 0
        try:
            async for piece in body:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += len(piece)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception as exc:  # the client went away, or the store failed mid-answer
            raise _AnswerCut(sent, exc) from exc
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()
        return sent

    async def _send_error(
        self,
        send: Send,
        method: str,
        error: S3Error,
        req: Request,
        request_id: str,
        close: list[tuple[str, str]],
    ) -> int:
        if error.status == 304:
            headers304 = [("x-amz-request-id", request_id), *close]
            await send_bytes(send, 304, encode_headers(headers304), b"")
            return 0
        resource = f"/{req.bucket}/{req.key}" if req.key else f"/{req.bucket}"
        body = b"" if method == "HEAD" else _error_document(error, resource, request_id)
        headers = [
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            ("x-amz-request-id", request_id),
            *close,
        ]
        await send_bytes(send, error.status, encode_headers(headers), body)
        return len(body)

    async def _health(self, path: str, method: str, send: Send) -> None:
        status, text = 200, b"ok\n"
        if path == "/readyz":
            failed = await self._unready()
            if failed:
                status, text = 503, f"not ready: {', '.join(failed)}\n".encode()
        headers = encode_headers(
            [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
        )
        await send_bytes(send, status, headers, b"" if method == "HEAD" else text)

    async def _unready(self) -> list[str]:
        """The buckets whose store does not answer a one-item listing in time."""

        def probe(store: Storager) -> None:
            next(iter(store.list("", list_mode="dir")), None)

        failed = []
        for name, bucket in self.buckets.items():
            try:
                await asyncio.wait_for(bucket.run(probe, bucket.store), READY_TIMEOUT)
            except Exception:
                failed.append(name)
        return failed

    # -- upload expiry ------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep_uploads()
            except Exception:
                _log.exception("the expiry sweep of incomplete uploads failed")

    async def sweep_uploads(self, now: datetime | None = None) -> int:
        """Abort the incomplete uploads older than ``upload_max_age``; return how many."""
        limit = (now or datetime.now(UTC)) - self.upload_max_age
        aborted = 0
        for bucket in self.buckets.values():
            parts = part_store(bucket.store)
            for multipart in await bucket.run(_stale, parts, limit):
                with contextlib.suppress(Exception):
                    await bucket.run(parts.abort_multipart, multipart)
                    aborted += 1
                self.uploads.drop(multipart.upload_id)
        return aborted


class _AnswerCut(Exception):
    """A streamed answer failed after its status line was sent."""

    def __init__(self, sent: int, cause: BaseException) -> None:
        self.sent = sent
        super().__init__(f"after {sent} bytes: {cause!r}")


class _BodyWatch:
    """A request's ``receive``, noting when the body has been read to its end."""

    def __init__(self, receive: Receive, headers: Mapping[str, str]) -> None:
        self._receive = receive
        self.done = _declared_length(headers) == 0 and "transfer-encoding" not in headers

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message


def _declared_length(headers: Mapping[str, str]) -> int:
    text = headers.get("content-length", "")
    return int(text) if text.isascii() and text.isdigit() else 0


def _stale(parts: PartStore, limit: datetime) -> list[Multipart]:
    return [started.multipart for started in parts.started() if started.initiated < limit]


def _error_document(error: S3Error, resource: str, request_id: str) -> bytes:
    return document(
        "Error",
        [
            element("Code", error.code),
            element("Message", error.message),
            element("Resource", resource),
            element("RequestId", request_id),
        ],
    ).replace(b' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', b"")


async def _head_bucket(bucket: Bucket, req: Request) -> Response:
    return Response(200, [("x-amz-bucket-region", "us-east-1")])


async def _create_bucket(bucket: Bucket, req: Request) -> Response:
    await req.small_body()  # any LocationConstraint is accepted
    return Response(200, [("Location", f"/{bucket.name}")])


async def _delete_bucket(bucket: Bucket, req: Request) -> Response:
    items, _ = await bucket.run(_listing.collect_page, bucket, "", "", "", 1)
    if items:
        raise S3Error("BucketNotEmpty", "the bucket you tried to delete is not empty")
    return Response(204)


async def _bucket_location(bucket: Bucket, req: Request) -> Response:
    body = document("LocationConstraint", [])
    return Response(200, [("Content-Type", "application/xml")], body)


async def _bucket_versioning(bucket: Bucket, req: Request) -> Response:
    body = document("VersioningConfiguration", [])
    return Response(200, [("Content-Type", "application/xml")], body)


# The operations each handled by one function (looked up per request).
_SIMPLE: dict[str, _Handler] = {
    "ListObjectsV2": _listing.list_objects_v2,
    "ListObjects": _listing.list_objects,
    "ListObjectVersions": _listing.list_object_versions,
    "GetObject": _objects.get_object,
    "HeadObject": _objects.head_object,
    "PutObject": _objects.put_object,
    "DeleteObject": _objects.delete_object,
    "DeleteObjects": _objects.delete_objects,
    "HeadBucket": _head_bucket,
    "CreateBucket": _create_bucket,
    "DeleteBucket": _delete_bucket,
    "GetBucketLocation": _bucket_location,
    "GetBucketVersioning": _bucket_versioning,
}
_MULTIPART: dict[str, Callable[[Bucket, Uploads, Request], Awaitable[Response]]] = {
    "CreateMultipartUpload": _multipart.create_upload,
    "UploadPart": _multipart.upload_part,
    "CompleteMultipartUpload": _multipart.complete_upload,
    "AbortMultipartUpload": _multipart.abort_upload,
    "ListParts": _multipart.list_parts,
    "ListMultipartUploads": _multipart.list_uploads,
}
