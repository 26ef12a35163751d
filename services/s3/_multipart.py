"""Multipart uploads: the Segmenter operations, and copies too large for one request.

:class:`S3Multipart` is a mixin of :class:`~storager.services.s3.S3Storage`; its
requests go through the store's transport like every other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from storager._errors import InvalidArgumentError
from storager._object import Multipart, Object, ObjectMode, Part
from storager._protocols import WriteData
from storager._streams import iter_chunks
from storager.services.s3._headers import object_headers
from storager.services.s3._transport import Head, Transport
from storager.services.s3._upload import MAX_PARTS, PART_MAX

__all__ = ["S3Multipart", "check_parts", "completion_etags", "needs_listing"]


def check_parts(path: str, parts: Sequence[Part]) -> None:
    """Refuse an empty part list or one not in increasing order of numbers."""
    if not parts:
        raise InvalidArgumentError("complete_multipart", "s3", path, "no parts given")
    last = 0
    for part in parts:
        if part.number <= last:
            raise InvalidArgumentError(
                "complete_multipart", "s3", path, "parts must be in increasing order"
            )
        last = part.number


def needs_listing(parts: Sequence[Part]) -> bool:
    """Whether a part lacks its ETag, which the upload's listing then supplies."""
    return any(not part.etag for part in parts)


def completion_etags(
    path: str, parts: Sequence[Part], uploaded: Iterable[Part]
) -> list[tuple[int, str]]:
    """The (number, ETag) list to complete with: the caller's ETags, else the listed ones.

    Some servers (SeaweedFS) list a part sent twice under both of its ETags; which one is
    current cannot be told, so such a part needs the caller's ETag.
    """
    listed: dict[int, set[str]] = {}
    for part in uploaded:
        listed.setdefault(part.number, set()).add(part.etag)
    chosen = []
    for part in parts:
        etags = {part.etag} if part.etag else listed.get(part.number, set())
        if not etags:
            raise InvalidArgumentError(
                "complete_multipart", "s3", path, f"part {part.number} was not uploaded"
            )
        if len(etags) > 1:
            raise InvalidArgumentError(
                "complete_multipart",
                "s3",
                path,
                f"part {part.number} is listed {len(etags)} times with different ETags; "
                "give the part's etag (write_multipart returns it)",
            )
        chosen.append((part.number, etags.pop()))
    return chosen


class S3Multipart:
    """Create, fill, complete, abort and list multipart uploads; copy part by part."""

    if TYPE_CHECKING:
        # What the mixin uses of the store it is mixed into.
        _transport: Transport

        @staticmethod
        def _key(path: str) -> str: ...

        def _rel(self, abs_path: str) -> str: ...

    def _copy_parts(self, src: str, dst: str, head: Head) -> None:
        """Copy an object over 5 GiB, part by part inside the service."""
        key, transport = self._key(dst), self._transport
        headers = object_headers(content_type=head.content_type, user_metadata=head.user_metadata)
        upload_id = transport.create_multipart("copy", dst, key, headers)
        part = max(PART_MAX // 5, -(-head.length // MAX_PARTS))
        try:
            parts = []
            for number, start in enumerate(range(0, head.length, part), start=1):
                last = min(start + part, head.length) - 1
                etag = transport.copy_part(
                    "copy", dst, self._key(src), key, upload_id, number, start, last
                )
                parts.append((number, etag))
            transport.complete_multipart("copy", dst, key, upload_id, parts, {})
        except BaseException:
            transport.abort_multipart("copy", dst, key, upload_id)
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
        headers = object_headers(
            content_type=content_type,
            storage_class=storage_class,
            server_side_encryption=server_side_encryption,
            user_metadata=user_metadata,
        )
        upload_id = self._transport.create_multipart(
            "create_multipart", path, self._key(path), headers
        )
        return Multipart(path, upload_id)

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
        etag = self._transport.upload_part(
            "write_multipart", path, self._key(path), multipart.upload_id, number, body
        )
        return Part(number, len(body), etag)

    def _complete_multipart(self, multipart: Multipart, parts: Sequence[Part]) -> Object:
        path = multipart.path
        check_parts(path, parts)
        uploaded = list(self._list_multipart(multipart)) if needs_listing(parts) else []
        listed = completion_etags(path, parts, uploaded)
        final_etag = self._transport.complete_multipart(
            "complete_multipart", path, self._key(path), multipart.upload_id, listed, {}
        )
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=sum(part.size for part in parts),
            etag=final_etag,
        )

    def _abort_multipart(self, multipart: Multipart) -> None:
        path = multipart.path
        self._transport.abort_multipart(
            "abort_multipart", path, self._key(path), multipart.upload_id
        )

    def _list_multipart(self, multipart: Multipart) -> Iterator[Part]:
        path = multipart.path
        marker = 0
        while True:
            parts, next_marker = self._transport.list_parts(
                "list_multipart", path, self._key(path), multipart.upload_id, marker
            )
            for part in parts:
                yield Part(part.number, part.size, part.etag)
            if next_marker is None or next_marker <= marker:
                return
            marker = next_marker
