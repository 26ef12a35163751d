"""The native async s3 path's requests: the sync transport's requests, awaited.

:class:`AsyncTransport` sends the requests of ``_http_transport.HttpTransport`` on the
caller's event loop. It is not a second request path: it takes everything but the
waiting from the store's sync transport — the address, region and credentials, the
payload hash rule, the SigV4 signer (``storager._sigv4.sign_headers``), the parsing of
S3 error answers and of 200 answers that report a failure, the ``retry`` policy (read
at each request, so ``store.request_retry`` applies to both sides), the retry rule
(``_retries.worth_retrying``) and the error map (``_errors``). Only the sending
(``_async_wire``, one connection pool per running loop) and the sleeping between
attempts are its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from storager._errors import StorageError
from storager._sigv4 import Credentials, sign_headers
from storager.aio._loop_local import LoopLocal
from storager.services.s3._async_wire import AsyncConnections
from storager.services.s3._connections import Response
from storager.services.s3._errors import error_for, unreachable
from storager.services.s3._http_transport import (
    _UNANSWERED,
    HttpTransport,
    _encoded,
    _noted,
    _total,
    head_of,
)
from storager.services.s3._retries import worth_retrying
from storager.services.s3._transport import Got, Head, S3Answer, UploadedPart
from storager.services.s3._xml import complete_body, parse_fields, parse_parts

__all__ = ["AsyncTransport"]

logger = logging.getLogger("storager.services.s3")

T = TypeVar("T")


async def _close_connections(connections: AsyncConnections) -> None:
    await connections.aclose()


class AsyncTransport:
    """S3 requests for one bucket on the running event loop; see the module docstring.

    Args:
        sync: The store's sync transport, whose rules and settings are used.
        limit: Connections open at once per event loop.
    """

    def __init__(self, sync: HttpTransport, *, limit: int) -> None:
        self.sync = sync
        self.limit = limit
        self._connections: LoopLocal[AsyncConnections] = LoopLocal(
            self._connect, _close_connections
        )

    def __repr__(self) -> str:
        return f"<AsyncTransport {self.sync.address.origin} bucket={self.sync.bucket!r}>"

    async def _connect(self) -> AsyncConnections:
        address = self.sync.address
        return AsyncConnections(
            address.scheme,
            address.host,
            address.port,
            limit=self.limit,
            timeout=self.sync.pool.timeout,
        )

    async def aclose(self) -> None:
        """Close the connections of every loop."""
        await self._connections.aclose()

    # -- one request ----------------------------------------------------------------------

    async def _credentials(self, op: str, path: str) -> Credentials:
        source = self.sync.credentials
        if source.pair is not None:
            return source.current(op, path)
        # botocore's chain may read files or ask the instance metadata service.
        return await asyncio.to_thread(source.current, op, path)

    async def send(
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
    ) -> Response:
        """Sign and send one request (retried per the store's policy); return a 2xx answer.

        ``accept`` is one more status returned as an answer instead of raised.
        """
        sync = self.sync
        query = query or []
        target = sync.address.target(key, query)
        signed_path = sync.address.path(key)
        payload_hash = sync._payload_hash(body)
        connections = await self._connections.get()

        async def attempt() -> Response:
            request_headers = dict(headers) if headers else {}
            request_headers["host"] = sync.address.host_header
            sign_headers(
                method,
                signed_path,
                query,
                request_headers,
                payload_hash,
                await self._credentials(op, path),
                sync.region,
            )
            response = await connections.request(method, target, request_headers, body, into=into)
            if response.status >= 300 and response.status != accept:
                raise sync._answer(response)
            return response

        try:
            return await _retrying(attempt, sync, f"{method} {op}")
        except StorageError:
            raise
        except S3Answer as exc:
            raise _noted(error_for(exc.code, exc.status, op, path, sync.bucket), exc) from exc
        except _UNANSWERED as exc:
            raise _noted(unreachable(exc, op, path), exc) from exc

    # -- the requests ---------------------------------------------------------------------

    async def get(
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
        """GET the object or a range of it; see ``Transport.get`` (``into`` too)."""
        headers = {}
        if first is not None:
            headers["range"] = f"bytes={first}-{'' if last is None else last}"
        if if_match is not None:
            headers["if-match"] = if_match
        response = await self.send(op, path, "GET", key, headers=headers, into=into, accept=416)
        if response.status == 416:
            return Got(b"", None, None)  # the range starts at or past the end
        etag = response.headers.get("etag")
        content_range = response.headers.get("content-range")
        total = _total(content_range) if first is not None else len(response.body)
        return Got(response.body, etag.strip('"') if etag else None, total)

    async def head(self, op: str, path: str, key: str) -> Head:
        """HEAD the object."""
        return head_of((await self.send(op, path, "HEAD", key)).headers)

    async def put(
        self,
        op: str,
        path: str,
        key: str,
        body: bytes | bytearray | memoryview,
        headers: Mapping[str, str],
    ) -> str | None:
        """PUT one object; return its ETag."""
        response = await self.send(op, path, "PUT", key, headers=headers, body=body)
        etag = response.headers.get("etag")
        return etag.strip('"') if etag else None

    async def delete(self, op: str, path: str, key: str) -> None:
        """DELETE a key (a missing key is not an error)."""
        await self.send(op, path, "DELETE", key)

    async def list_body(
        self,
        op: str,
        path: str,
        prefix: str,
        delimiter: str | None,
        token: str | None,
        max_keys: int | None = None,
    ) -> bytes | bytearray | memoryview:
        """The raw answer of one ListObjectsV2 page (``_xml`` parses it)."""
        query = [("list-type", "2"), ("encoding-type", "url"), ("prefix", prefix)]
        if delimiter is not None:
            query.append(("delimiter", delimiter))
        if max_keys is not None:
            query.append(("max-keys", str(max_keys)))
        if token is not None:
            query.append(("continuation-token", token))
        return (await self.send(op, path, "GET", "", query)).body

    async def copy(self, op: str, path: str, src_key: str, dst_key: str) -> None:
        """Copy one object (at most 5 GiB) inside the bucket."""
        headers = {"x-amz-copy-source": f"{self.sync.bucket}/{_encoded(src_key)}"}
        response = await self.send(op, path, "PUT", dst_key, headers=headers)
        self.sync._check_body(response, op, path)

    async def create_multipart(
        self, op: str, path: str, key: str, headers: Mapping[str, str]
    ) -> str:
        """Start a multipart upload; return its id."""
        response = await self.send(op, path, "POST", key, [("uploads", "")], headers)
        return parse_fields(response.body)[1].get("UploadId", "")

    async def upload_part(
        self,
        op: str,
        path: str,
        key: str,
        upload_id: str,
        number: int,
        body: bytes | bytearray | memoryview,
    ) -> str:
        """Upload part ``number``; return its ETag."""
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self.send(op, path, "PUT", key, query, body=body)
        return response.headers.get("etag", "").strip('"')

    async def copy_part(
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
        """Copy bytes ``first`` to ``last`` of ``src_key`` as part ``number``."""
        query = [("partNumber", str(number)), ("uploadId", upload_id)]
        headers = {
            "x-amz-copy-source": f"{self.sync.bucket}/{_encoded(src_key)}",
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        response = await self.send(op, path, "PUT", key, query, headers)
        return self.sync._check_body(response, op, path).get("ETag", "").strip('"')

    async def complete_multipart(
        self,
        op: str,
        path: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> str | None:
        """Complete an upload from ``(number, etag)`` pairs; return the object's ETag."""
        body = complete_body(list(parts))
        response = await self.send(op, path, "POST", key, [("uploadId", upload_id)], headers, body)
        return self.sync._check_body(response, op, path).get("ETag", "").strip('"') or None

    async def abort_multipart(self, op: str, path: str, key: str, upload_id: str) -> None:
        """Abort an upload; an upload already gone is not an error."""
        await self.send(op, path, "DELETE", key, [("uploadId", upload_id)], accept=404)

    async def list_parts(
        self, op: str, path: str, key: str, upload_id: str, marker: int
    ) -> tuple[list[UploadedPart], int | None]:
        """One page of an upload's parts; the next marker, or None on the last page."""
        query = [("part-number-marker", str(marker)), ("uploadId", upload_id)]
        return parse_parts((await self.send(op, path, "GET", key, query)).body)


async def _retrying(send: Callable[[], Awaitable[T]], sync: HttpTransport, what: str) -> T:
    """``_retries.retrying`` on the loop: the same policy and rule, an awaited sleep."""
    policy = sync.retry
    attempt = 0
    started = time.monotonic()
    while True:
        try:
            return await send()
        except Exception as exc:
            attempt += 1
            wait = policy.backoff(attempt, random.random())
            if (
                attempt >= policy.max_attempts
                or not worth_retrying(exc)
                or time.monotonic() - started + wait > policy.budget
            ):
                if attempt > 1:
                    exc.add_note(f"s3: {what} gave up after {attempt} attempts")
                raise
            logger.debug("retrying %s after %s (attempt %d)", what, type(exc).__name__, attempt)
            await asyncio.sleep(wait)
