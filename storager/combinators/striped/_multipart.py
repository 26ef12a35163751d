"""Multipart uploads for free: each part is its own chunk group, complete writes a manifest.

- ``create_multipart`` records the upload (its path and pairs) under
  ``.striped/uploads/<upload_id>/upload``; the upload id is a generation.
- ``write_multipart`` stores the part's data as chunks of a new generation, then
  records the part (its stripes, size, checksum) under ``part-<number>``; writing a
  number again replaces the record and drops the older part's chunks. Parts may
  arrive in any order and at once.
- ``complete_multipart`` joins the listed parts' stripes into one manifest (no data
  is copied or moved) and publishes it; then the upload's records go, and parts
  left out are dropped. The checksum and etag are the sha256 of the parts'
  checksums, followed by ``-N`` (the S3 composite form).
- ``abort_multipart`` drops every part's chunks and the records.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from storager._errors import InvalidArgumentError, NotFoundError, OutcomeUnknownError
from storager._object import Multipart, Object, Part
from storager._pairs import check_int, check_io_callback
from storager._protocols import IoCallback, Segmenter, WriteData
from storager.combinators.striped._manifest import (
    Stripe,
    is_generation,
    new_generation,
    stripes_from_json,
    stripes_to_json,
)
from storager.combinators.striped._records import restate
from storager.combinators.striped._state import StripedState, traced
from storager.combinators.striped._writer import discard, write_group

__all__ = ["StripedMultipart"]

_MAX_PART = 10_000


def _part_checksum(doc: Mapping[str, Any]) -> str:
    """Return a part record's checksum (records written before it was derived: sha256)."""
    return str(doc["checksum"] if "checksum" in doc else doc["sha256"])


class StripedMultipart(StripedState, Segmenter):
    """The Segmenter part of Striped (see the module docstring)."""

    def _upload(self, op: str, multipart: Multipart) -> dict[str, Any]:
        """Return the upload's record, or raise NotFoundError."""
        upload_id = multipart.upload_id
        if isinstance(upload_id, str) and is_generation(upload_id):
            try:
                record = self._records.read_json(self._records.upload_key(upload_id))
            except NotFoundError:
                record = None
            except Exception as exc:
                raise restate(exc, op, multipart.path) from exc
            if isinstance(record, dict) and record.get("key") == self._key(op, multipart.path):
                return record
        raise NotFoundError(op, "striped", multipart.path, "no such multipart upload")

    def _part(self, op: str, multipart: Multipart, number: int) -> dict[str, Any] | None:
        try:
            doc = self._records.read_json(self._records.part_key(multipart.upload_id, number))
        except NotFoundError:
            return None
        except Exception as exc:
            raise restate(exc, op, multipart.path) from exc
        return doc if isinstance(doc, dict) else None

    def _drop_part(self, doc: Mapping[str, Any] | None) -> None:
        if doc:
            with contextlib.suppress(Exception):
                discard(self._core, stripes_from_json(doc["stripes"]))

    @traced("create_multipart")
    def create_multipart(
        self,
        path: str,
        *,
        content_type: str | None = None,
        user_metadata: Mapping[str, str] | None = None,
        **pairs: Any,
    ) -> Multipart:
        """Start an upload of ``path``; nothing is visible until it is completed."""
        self._pairs("create_multipart", path, pairs)
        shown = path if isinstance(path, str) else ""
        content_type = self._check_object_pairs(
            "create_multipart", shown, content_type, user_metadata
        )
        key = self._key("create_multipart", path)
        upload_id = new_generation()
        record = {
            "key": key,
            "content_type": content_type,
            "user_metadata": dict(user_metadata or {}),
        }
        try:
            self._records.write_json(self._records.upload_key(upload_id), record)
        except Exception as exc:
            raise restate(exc, "create_multipart", path) from exc
        return Multipart(path, upload_id)

    @traced("write_multipart")
    def write_multipart(
        self,
        multipart: Multipart,
        number: int,
        data: WriteData,
        *,
        size: int | None = None,
        io_callback: IoCallback | None = None,
        **pairs: Any,
    ) -> Part:
        """Store part ``number`` as its own chunk group; writing it again replaces it."""
        op = "write_multipart"
        self._pairs(op, multipart.path, pairs)
        if type(number) is not int or not 1 <= number <= _MAX_PART:
            raise InvalidArgumentError(
                op, "striped", multipart.path, f"part number must be 1 to {_MAX_PART}"
            )
        if size is not None:
            check_int(op, "striped", multipart.path, "size", size)
        if io_callback is not None:
            check_io_callback(op, "striped", multipart.path, "io_callback", io_callback)
        self._upload(op, multipart)
        previous = self._part(op, multipart, number)
        generation = new_generation()
        group = write_group(
            self._core, op, multipart.path, generation, data, size=size, io_callback=io_callback
        )
        doc = {
            "number": number,
            "size": group.size,
            "checksum": group.checksum,
            "codec": self._core.codec.spec(),
            "chunk_size": self._core.chunk_size,
            "stripes": stripes_to_json(group.stripes),
        }
        try:
            self._records.write_json(self._records.part_key(multipart.upload_id, number), doc)
        except OutcomeUnknownError:
            raise  # the record may still land: its chunks must stay
        except Exception as exc:
            discard(self._core, group.stripes)
            raise restate(exc, op, multipart.path) from exc
        except BaseException:
            discard(self._core, group.stripes)
            raise
        if previous is not None:
            self._drop_part(previous)
        return Part(number, group.size, group.checksum)

    @traced("complete_multipart")
    def complete_multipart(
        self, multipart: Multipart, parts: Sequence[Part], **pairs: Any
    ) -> Object:
        """Publish a manifest joining ``parts`` in order (no data moves)."""
        op = "complete_multipart"
        self._pairs(op, multipart.path, pairs)
        record = self._upload(op, multipart)
        if not parts:
            raise InvalidArgumentError(op, "striped", multipart.path, "no parts given")
        stripes: list[Stripe] = []
        digests = hashlib.sha256()
        offset = 0
        codec: Any = None
        numbers: list[int] = []
        for part in parts:
            if numbers and part.number <= numbers[-1]:
                raise InvalidArgumentError(
                    op, "striped", multipart.path, "parts must be given by increasing number"
                )
            numbers.append(part.number)
            doc = self._part(op, multipart, part.number)
            if doc is None:
                raise InvalidArgumentError(
                    op, "striped", multipart.path, f"part {part.number} was not uploaded"
                )
            checksum = _part_checksum(doc)
            if part.etag and part.etag != checksum:
                raise InvalidArgumentError(
                    op,
                    "striped",
                    multipart.path,
                    f"part {part.number}: etag {part.etag!r} is not the uploaded part's",
                )
            if codec is not None and doc["codec"] != codec:
                raise InvalidArgumentError(
                    op, "striped", multipart.path, "parts were written with different codecs"
                )
            codec = doc["codec"]
            stripes.extend(stripes_from_json(doc["stripes"], shift=offset))
            offset += int(doc["size"])
            digests.update(bytes.fromhex(checksum))
        composite = f"{digests.hexdigest()}-{len(parts)}"
        manifest = self._new_manifest(
            new_generation(),
            tuple(stripes),
            offset,
            f"composite:{composite}",
            composite,
            record.get("content_type"),
            record.get("user_metadata"),
        )
        manifest = replace(manifest, codec=codec)
        key = str(record["key"])
        self._publish(op, multipart.path, key, manifest, owned=False)
        self._finish(multipart, keep=set(numbers))
        return manifest.to_object(self._rel(key))

    def _finish(self, multipart: Multipart, keep: set[int]) -> None:
        """Delete the upload's records; drop the chunks of parts not in ``keep``."""
        records = self._records
        for key in records.part_keys(multipart.upload_id):
            with contextlib.suppress(Exception):
                number = int(key.rpartition("part-")[2])
                if number not in keep:
                    self._drop_part(records.read_json(key))
                records.store.delete(key)
        with contextlib.suppress(Exception):
            records.store.delete(records.upload_key(multipart.upload_id))
        with contextlib.suppress(Exception):
            records.store.delete(records.upload_key(multipart.upload_id).rpartition("/")[0] + "/")

    @traced("abort_multipart")
    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        """Drop every part and the upload; nothing is left behind."""
        self._pairs("abort_multipart", multipart.path, pairs)
        self._upload("abort_multipart", multipart)
        self._finish(multipart, keep=set())

    @traced("list_multipart")
    def list_multipart(self, multipart: Multipart, **pairs: Any) -> Iterator[Part]:
        """List the parts stored so far, by number."""
        op = "list_multipart"
        self._pairs(op, multipart.path, pairs)
        self._upload(op, multipart)
        parts = []
        for key in self._records.part_keys(multipart.upload_id):
            try:
                doc = self._records.read_json(key)
            except NotFoundError:
                continue
            parts.append(Part(int(doc["number"]), int(doc["size"]), _part_checksum(doc)))
        return iter(sorted(parts, key=lambda p: p.number))
