"""The s3fs transport (``request_path=s3fs``): the same requests through s3fs's
aiobotocore client.

Each method is one botocore operation run on s3fs's event loop and waited for. Wire
headers from ``_headers`` become botocore's parameters here (:data:`PARAMETER_OF`);
answers become the seam's values. Errors go through ``_errors.map_error`` with the
botocore or s3fs error as ``__cause__``. s3fs's and botocore's own retries are turned
off: requests are retried by ``_retries`` only, as on the HTTP transport.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, TypeVar

import s3fs
from aiobotocore.session import AioSession
from botocore.loaders import Loader, create_loader
from fsspec.asyn import sync

from storager._errors import StorageError
from storager._retry_policy import RetryPolicy
from storager.services.s3._errors import client_error_code, find_client_error, map_error
from storager.services.s3._headers import META_PREFIX
from storager.services.s3._retries import REQUEST_RETRY, retrying
from storager.services.s3._transport import Got, Head, Listed, ListPage, UploadedPart

__all__ = ["PARAMETER_OF", "S3fsTransport"]

T = TypeVar("T")

#: botocore's parameter for each wire header ``_headers`` builds (metadata apart).
PARAMETER_OF = {
    "content-type": "ContentType",
    "content-md5": "ContentMD5",
    "x-amz-storage-class": "StorageClass",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "if-match": "IfMatch",
    "if-none-match": "IfNoneMatch",
}
_NO_MAP: Mapping[str, Any] = {}


@functools.cache
def _shared_loader() -> Loader:
    # One model loader for every store: parsing S3's API model costs ~10 MiB and tens
    # of milliseconds per client otherwise. Credentials stay per session.
    return create_loader()


def _parameters(headers: Mapping[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    meta: dict[str, str] = {}
    for name, value in headers.items():
        if name.startswith(META_PREFIX):
            meta[name[len(META_PREFIX) :]] = value
        else:
            params[PARAMETER_OF[name]] = value
    if meta:
        params["Metadata"] = meta
    return params


def _head(response: Mapping[str, Any]) -> Head:
    system = {
        name: response[field]
        for field, name in (
            ("StorageClass", "storage_class"),
            ("ServerSideEncryption", "server_side_encryption"),
            ("VersionId", "version_id"),
        )
        if response.get(field)
    }
    modified = response.get("LastModified")
    etag = response.get("ETag")
    return Head(
        int(response.get("ContentLength") or 0),
        etag.strip('"') if isinstance(etag, str) else None,
        response.get("ContentType"),
        modified if isinstance(modified, datetime) else None,
        dict(response.get("Metadata") or _NO_MAP),
        system,
    )


def _etag(response: Mapping[str, Any]) -> str | None:
    etag = response.get("ETag")
    return etag.strip('"') if isinstance(etag, str) else None


def _status(exc: BaseException) -> int:
    """The HTTP status of the S3 answer behind ``exc``; 0 when there was none."""
    client_error = find_client_error(exc)
    return client_error_code(client_error)[1] if client_error is not None else 0


class S3fsTransport:
    """S3 requests for one bucket through ``s3fs.S3FileSystem``'s client."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None,
        region: str | None,
        credential: tuple[str, str] | None,
        force_path_style: bool | None,
    ) -> None:
        self.bucket = bucket
        self.retry: RetryPolicy = REQUEST_RETRY
        # aiobotocore holds more copies of a part body in flight than http.client does.
        self.parts_in_flight = 1
        client_kwargs: dict[str, Any] = {}
        if region:
            client_kwargs["region_name"] = region
        config_kwargs: dict[str, Any] = {
            "signature_version": "s3v4",
            # Checksums only when S3 requires them: emulators differ in what they accept.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "retries": {"total_max_attempts": 1},  # _retries is the one retry layer
        }
        if force_path_style is not None:
            config_kwargs["s3"] = {"addressing_style": "path" if force_path_style else "virtual"}
        session = AioSession()
        session.register_component("data_loader", _shared_loader())
        key, secret = credential if credential is not None else (None, None)
        self._fs = s3fs.S3FileSystem(
            session=session,
            key=key,
            secret=secret,
            endpoint_url=endpoint,
            client_kwargs=client_kwargs,
            config_kwargs=config_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
            asynchronous=False,
        )
        self._fs.retries = 1

    def __repr__(self) -> str:
        return f"<S3fsTransport bucket={self.bucket!r}>"

    def close(self) -> None:
        client = getattr(self._fs, "_s3", None)
        if client is not None:
            s3fs.S3FileSystem.close_session(self._fs.loop, client)
            self._fs._s3 = None

    # -- one request ----------------------------------------------------------------------

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def wrapped() -> T:
            return await make()

        result: T = sync(self._fs.loop, wrapped)
        return result

    def _call(
        self, op: str, path: str, method: str, *, accept: int = 0, **kwargs: Any
    ) -> dict[str, Any]:
        """Run one botocore operation (retried per ``self.retry``); map its failure.

        A failure whose HTTP status is ``accept`` returns an empty answer instead.
        """

        def attempt() -> dict[str, Any]:
            response: dict[str, Any] = self._run(
                lambda: self._fs._call_s3(method, Bucket=self.bucket, **kwargs)
            )
            return response

        try:
            return retrying(self.retry, attempt, f"{method} {op}")
        except StorageError:
            raise
        except Exception as exc:
            if accept and _status(exc) == accept:
                return {}
            raise self._error(exc, op, path) from exc

    def _error(self, exc: Exception, op: str, path: str) -> StorageError:
        """The storager error for a failed request, with the retry layer's notes."""
        error = map_error(exc, op, path, self.bucket)
        for note in getattr(exc, "__notes__", ()):
            error.add_note(note)
        return error

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
        kwargs: dict[str, Any] = {}
        if first is not None:
            kwargs["Range"] = f"bytes={first}-{'' if last is None else last}"
        if if_match is not None:
            kwargs["IfMatch"] = if_match

        async def fetch() -> dict[str, Any]:
            response: dict[str, Any] = await self._fs._call_s3(
                "get_object", Bucket=self.bucket, Key=key, **kwargs
            )
            body = response["Body"]
            try:
                response["Body"] = await body.read()
            finally:
                body.close()
            return response

        def attempt() -> dict[str, Any]:
            return self._run(fetch)

        try:
            response = retrying(self.retry, attempt, f"GET {op}")
        except StorageError:
            raise
        except Exception as exc:
            if _status(exc) == 416:
                return Got(b"", None, None)  # the range starts at or past the end
            raise self._error(exc, op, path) from exc
        data: bytes = response["Body"]
        total: int | None = len(data)
        if first is not None:
            content_range = str(response.get("ContentRange") or "")
            tail = content_range.rpartition("/")[2]
            total = int(tail) if tail.isdigit() else None
        return Got(data, _etag(response), total)

    def head(self, op: str, path: str, key: str) -> Head:
        return _head(self._call(op, path, "head_object", Key=key))

    def put(
        self, op: str, path: str, key: str, body: bytes | bytearray, headers: Mapping[str, str]
    ) -> str | None:
        params = _parameters(headers)
        return _etag(self._call(op, path, "put_object", Key=key, Body=bytes(body), **params))

    def delete(self, op: str, path: str, key: str) -> None:
        self._call(op, path, "delete_object", Key=key)

    def delete_many(self, op: str, path: str, keys: Sequence[str]) -> list[tuple[str, str]]:
        response = self._call(
            op,
            path,
            "delete_objects",
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        return [(e.get("Key", ""), e.get("Code", "")) for e in response.get("Errors") or ()]

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
        kwargs: dict[str, Any] = {"Prefix": prefix}
        if delimiter is not None:
            kwargs["Delimiter"] = delimiter
        if token is not None:
            kwargs["ContinuationToken"] = token
        if max_keys is not None:
            kwargs["MaxKeys"] = max_keys
        page = self._call(op, path, "list_objects_v2", **kwargs)
        entries: list[Listed] = [
            (
                item["Key"],
                int(item.get("Size") or 0),
                item.get("LastModified"),
                _etag(item),
                item.get("StorageClass") or None,
            )
            for item in page.get("Contents") or ()
        ]
        prefixes = [str(common["Prefix"]) for common in page.get("CommonPrefixes") or ()]
        next_token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return ListPage(entries, prefixes, next_token or None)

    def list_pages(
        self, op: str, path: str, prefix: str, *, delimiter: str | None, executor: Executor
    ) -> Generator[ListPage, None, None]:
        """Every page; the next one is requested while this one is yielded."""
        future = executor.submit(self.list_page, op, path, prefix, delimiter=delimiter, token=None)
        try:
            while True:
                page = future.result()
                if page.next_token is not None:
                    future = executor.submit(
                        self.list_page, op, path, prefix, delimiter=delimiter, token=page.next_token
                    )
                yield page
                if page.next_token is None:
                    return
        finally:
            future.cancel()

    def copy(self, op: str, path: str, src_key: str, dst_key: str) -> None:
        source = {"Bucket": self.bucket, "Key": src_key}
        self._call(op, path, "copy_object", Key=dst_key, CopySource=source)

    def create_multipart(self, op: str, path: str, key: str, headers: Mapping[str, str]) -> str:
        params = _parameters(headers)
        return str(self._call(op, path, "create_multipart_upload", Key=key, **params)["UploadId"])

    def upload_part(
        self, op: str, path: str, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> str:
        response = self._call(
            op,
            path,
            "upload_part",
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=bytes(body),
        )
        return _etag(response) or ""

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
        response = self._call(
            op,
            path,
            "upload_part_copy",
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": src_key},
            CopySourceRange=f"bytes={first}-{last}",
        )
        return _etag(response.get("CopyPartResult") or {}) or ""

    def complete_multipart(
        self,
        op: str,
        path: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        headers: Mapping[str, str],
    ) -> str | None:
        listed = [{"PartNumber": number, "ETag": f'"{etag}"'} for number, etag in parts]
        response = self._call(
            op,
            path,
            "complete_multipart_upload",
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
            **_parameters(headers),
        )
        return _etag(response)

    def abort_multipart(self, op: str, path: str, key: str, upload_id: str) -> None:
        self._call(op, path, "abort_multipart_upload", accept=404, Key=key, UploadId=upload_id)

    def list_parts(
        self, op: str, path: str, key: str, upload_id: str, marker: int
    ) -> tuple[list[UploadedPart], int | None]:
        page = self._call(
            op, path, "list_parts", Key=key, UploadId=upload_id, PartNumberMarker=marker
        )
        parts = [
            UploadedPart(int(p["PartNumber"]), int(p["Size"]), _etag(p) or "")
            for p in page.get("Parts") or ()
        ]
        next_marker = int(page.get("NextPartNumberMarker") or 0)
        return parts, next_marker if page.get("IsTruncated") else None
