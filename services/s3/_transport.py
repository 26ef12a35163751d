"""The seam between the s3 service and the wire: one S3 request per method.

:class:`~storager.services.s3.S3Storage` holds the service's logic (paths to keys,
directory markers, conditional writes, streaming uploads, ranged readers) once, and
sends every request through a :class:`Transport`. Two implement it:

- :class:`~storager.services.s3._http_transport.HttpTransport`, the default: requests
  built here, signed by ``storager._sigv4``, sent over kept-alive connections;
- :class:`~storager.services.s3._s3fs_transport.S3fsTransport` (``request_path=s3fs``):
  the same requests through s3fs's aiobotocore client.

The contract, the same for both:

- keys are bucket-relative, without a leading ``/``; ``headers`` are wire headers
  with lower-case names (``_headers.object_headers`` builds them from pairs);
- a method returns plain values (:class:`Head`, :class:`Got`, :class:`ListPage`,
  ETags without quotes) and raises storager errors naming ``op`` and ``path``, with the
  vendor's detail (an :class:`S3Answer`, a botocore or socket error) as ``__cause__``;
- each request is retried by the transport's ``retry`` policy when it failed in a way
  worth retrying (throttling, 5xx, a connection failure); 1 attempt turns that off,
  for stores wrapped in the ``Retry`` combinator.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from storager._retry_policy import RetryPolicy

__all__ = ["Got", "Head", "ListPage", "Listed", "S3Answer", "Transport", "UploadedPart"]


@dataclass(frozen=True, slots=True)
class Head:
    """What a HEAD (or a GET's headers) says about an object."""

    length: int
    etag: str | None
    content_type: str | None
    last_modified: datetime | None
    user_metadata: Mapping[str, str]
    #: storage_class, server_side_encryption and version_id, when the answer has them.
    system: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Got:
    """A GET's answer: the body, the object's ETag and its whole length."""

    body: bytes | bytearray | memoryview
    etag: str | None
    #: The object's length (from Content-Range for a ranged GET); None when unknown.
    total: int | None


#: One listed key: (key, size, last_modified, etag, storage_class).
Listed = tuple[str, int, datetime | None, str | None, str | None]


@dataclass(slots=True)
class ListPage:
    """One ListObjectsV2 page: keys and common prefixes, decoded."""

    entries: list[Listed]
    prefixes: list[str]
    #: The continuation token of the next page; None on the last page.
    next_token: str | None


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A part of a multipart upload as ListParts reports it."""

    number: int
    size: int
    etag: str


class S3Answer(Exception):
    """An S3 error answer: the vendor detail chained under the storager error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Transport(Protocol):
    """Sends S3 requests for one bucket; see the module docstring for the contract."""

    retry: RetryPolicy
    #: Parts one streaming write uploads at once while the next fills.
    parts_in_flight: int

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
        """GET the object, or bytes ``first`` to ``last`` (inclusive; None: to the end).

        A range that starts at or past the end gives an empty body (S3 answers 416).
        With ``into``, a body that fits is read straight into it (the answer's body is
        then a view of ``into``).
        """
        ...

    def head(self, op: str, path: str, key: str) -> Head:
        """HEAD the object."""
        ...

    def put(
        self, op: str, path: str, key: str, body: bytes | bytearray, headers: Mapping[str, str]
    ) -> str | None:
        """PUT one object; return its ETag."""
        ...

    def delete(self, op: str, path: str, key: str) -> None:
        """DELETE a key (a missing key is not an error)."""
        ...

    def delete_many(self, op: str, path: str, keys: Sequence[str]) -> list[tuple[str, str]]:
        """Delete up to 1,000 keys in one request; return ``(key, code)`` of failures."""
        ...

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
        """One page of ListObjectsV2 under ``prefix``."""
        ...

    def list_pages(
        self, op: str, path: str, prefix: str, *, delimiter: str | None, executor: Executor
    ) -> Generator[ListPage, None, None]:
        """Every page of ListObjectsV2 under ``prefix``, fetching ahead on ``executor``."""
        ...

    def copy(self, op: str, path: str, src_key: str, dst_key: str) -> None:
        """Copy one object (at most 5 GiB) inside the bucket."""
        ...

    def create_multipart(self, op: str, path: str, key: str, headers: Mapping[str, str]) -> str:
        """Start a multipart upload; return its id."""
        ...

    def upload_part(
        self, op: str, path: str, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> str:
        """Upload part ``number``; return its ETag."""
        ...

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
        """Copy bytes ``first`` to ``last`` of ``src_key`` as part ``number``; return its ETag."""
        ...

    def complete_multipart(
        self,
        op: str,
        path: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> str | None:
        """Complete an upload from ``(number, etag)`` pairs; return the object's ETag."""
        ...

    def abort_multipart(self, op: str, path: str, key: str, upload_id: str) -> None:
        """Abort an upload; an upload already gone is not an error."""
        ...

    def list_parts(
        self, op: str, path: str, key: str, upload_id: str, marker: int
    ) -> tuple[list[UploadedPart], int | None]:
        """One page of an upload's parts; the next marker, or None on the last page."""
        ...

    def close(self) -> None:
        """Close connections; closing twice is fine."""
        ...
