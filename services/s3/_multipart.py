"""Multipart uploads: the Segmenter operations, and copies too large for one request.

:class:`S3Multipart` is a mixin of :class:`S3Storage`. Its requests go through the
store's ``_call``, so on the lean path they take the lean client like every other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, ObjectMode, Part
from storager._protocols import WriteData
from storager._streams import iter_chunks
from storager.services.s3._errors import client_error_code, find_client_error
from storager.services.s3._fields import attributes, unquote_etag
from storager.services.s3._upload import MAX_PARTS, PART_MAX

__all__ = ["S3Multipart"]


class S3Multipart:
    """Create, fill, complete, abort and list multipart uploads; copy part by part."""

    if TYPE_CHECKING:
        # What the mixin uses of the store it is mixed into.
        def _call(self, method: str, **kwargs: Any) -> dict[str, Any]: ...

        @staticmethod
        def _key(path: str) -> str: ...

        def _rel(self, abs_path: str) -> str: ...

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
        except Exception as exc:
            error = find_client_error(exc)
            if error is None or client_error_code(error)[0] != "NoSuchUpload":
                raise

    def _copy_parts(
        self, source: Mapping[str, str], dst: str, length: int, head: Mapping[str, Any]
    ) -> None:
        """Copy an object over 5 GiB, part by part inside the service."""
        key = self._key(dst)
        attrs = attributes(head.get("ContentType"), None, None, head.get("Metadata"))
        upload_id = str(self._call("create_multipart_upload", Key=key, **attrs)["UploadId"])
        part = max(PART_MAX // 5, -(-length // MAX_PARTS))
        try:
            parts = []
            for number, start in enumerate(range(0, length, part), start=1):
                end = min(start + part, length) - 1
                response = self._call(
                    "upload_part_copy",
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=dict(source),
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self._abort(key, upload_id)
            raise

    # -- Segmenter --------------------------------------------------------------------------

    def _create_multipart(
        self,
        path: str,
        *,
        content_type: str | None,
        server_side_encryption: str | None,
        storage_class: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Multipart:
        attrs = attributes(content_type, storage_class, server_side_encryption, user_metadata)
        response = self._call("create_multipart_upload", Key=self._key(path), **attrs)
        return Multipart(path, str(response["UploadId"]))

    def _write_multipart(
        self, multipart: Multipart, number: int, data: WriteData, *, size: int | None
    ) -> Part:
        path = multipart.path
        if not 1 <= number <= MAX_PARTS:
            raise InvalidArgumentError(
                "write_multipart", "s3", path, "part number must be 1 to 10000"
            )
        if size is not None and size > PART_MAX:
            raise InvalidArgumentError("write_multipart", "s3", path, "a part is at most 5 GiB")
        # One part is one request body: it is held in memory, at most 5 GiB.
        body = bytearray()
        for chunk in iter_chunks("write_multipart", "s3", path, data, size=size):
            body += chunk
            if len(body) > PART_MAX:
                raise InvalidArgumentError("write_multipart", "s3", path, "a part is at most 5 GiB")
        response = self._call(
            "upload_part",
            Key=self._key(path),
            UploadId=multipart.upload_id,
            PartNumber=number,
            Body=bytes(body),
        )
        return Part(number, len(body), unquote_etag(response.get("ETag")) or "")

    def _complete_multipart(self, multipart: Multipart, parts: Sequence[Part]) -> Object:
        path = multipart.path
        last = 0
        for part in parts:
            if part.number <= last:
                raise InvalidArgumentError(
                    "complete_multipart", "s3", path, "parts must be in increasing order"
                )
            last = part.number
        if not parts:
            raise InvalidArgumentError("complete_multipart", "s3", path, "no parts given")
        uploaded: dict[int, Part] = {}
        if any(not part.etag for part in parts):
            uploaded = {p.number: p for p in self._list_multipart(multipart)}
        listed = []
        for part in parts:
            etag = part.etag or (uploaded[part.number].etag if part.number in uploaded else "")
            if not etag:
                raise InvalidArgumentError(
                    "complete_multipart", "s3", path, f"part {part.number} was not uploaded"
                )
            listed.append({"PartNumber": part.number, "ETag": f'"{etag}"'})
        response = self._call(
            "complete_multipart_upload",
            Key=self._key(path),
            UploadId=multipart.upload_id,
            MultipartUpload={"Parts": listed},
        )
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=sum(part.size for part in parts),
            etag=unquote_etag(response.get("ETag")),
        )

    def _abort_multipart(self, multipart: Multipart) -> None:
        self._abort(self._key(multipart.path), multipart.upload_id)

    def _list_multipart(self, multipart: Multipart) -> Iterator[Part]:
        marker = 0
        while True:
            page = self._call(
                "list_parts",
                Key=self._key(multipart.path),
                UploadId=multipart.upload_id,
                PartNumberMarker=marker,
            )
            for item in page.get("Parts") or ():
                yield Part(
                    int(item["PartNumber"]), int(item["Size"]), unquote_etag(item["ETag"]) or ""
                )
            next_marker = int(page.get("NextPartNumberMarker") or 0)
            if not page.get("IsTruncated") or next_marker <= marker:
                return
            marker = next_marker
