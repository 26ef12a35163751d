"""One large object copied as parts uploaded in parallel, into a store that is a Segmenter.

A stream into s3 keeps 4 parts of 5 MiB in flight; a file of known size can do better:
:data:`PART_JOBS` workers each read one range of the source (``read(offset=, size=)``) and
upload it as one part of a multipart upload, so the reads, the uploads and the server's
work on them overlap. Memory is ``PART_JOBS x part size`` (8 x 8 MiB) per object. The
upload is completed only when every part is in. The source is stat'ed before the first
part and again after the last: if size, ETag or modification time differ at all
(exactly, not to the second: a same-size rewrite within one second must show), the
upload is aborted and the copy fails, since its parts may mix two versions.

With a resume record (``_resume.py``), a copy that fails or is killed keeps its upload
and its record, and the same copy run again sends only the parts the service does not
hold yet (verified by size and ETag against the record, and only while the source is
the version the upload began from; otherwise the old upload is aborted and a new one
begun). Without a record, any failure aborts the upload, so nothing is left behind. A
source with no ETag and a modification time in whole seconds is never resumed (see
:func:`has_exact_version`).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from storager._errors import PreconditionFailedError, StorageError
from storager._object import Multipart, Object, Part
from storager._protocols import IoCallback, Segmenter, Storager
from storager.cli._defaults import PART_SIZE
from storager.cli._resume import UploadRecord, source_version

__all__ = [
    "PARTS_MIN_SIZE",
    "PART_JOBS",
    "PART_SIZE",
    "CopiedParts",
    "copy_in_parts",
    "has_exact_version",
    "part_size_for",
]

#: Parts uploading at once for one object.
PART_JOBS = 8
#: From this size a copy into a Segmenter goes in parallel parts.
PARTS_MIN_SIZE = 4 * PART_SIZE


@dataclass(frozen=True, slots=True)
class CopiedParts:
    """What a parts copy did.

    Attributes:
        size: The object's size in bytes.
        reused: Bytes of parts an earlier, interrupted run had uploaded (not sent again).
    """

    size: int
    reused: int = 0


def part_size_for(store: Storager, size: int, wanted: int = PART_SIZE) -> int:
    """Return the part size for an object of ``size`` bytes in ``store``.

    ``wanted`` is raised to the store's minimum part size, and to what keeps the object
    within its part count, and lowered to its maximum.
    """
    cap = store.metadata().capability
    part = max(wanted, cap.multipart_part_size_min or 0)
    if cap.multipart_parts_max:
        needed = -(-size // cap.multipart_parts_max)
        part = max(part, -(-needed // (1 << 20)) << 20)  # whole MiB
    if cap.multipart_part_size_max:
        part = min(part, cap.multipart_part_size_max)
    return part


def copy_in_parts(
    src: Storager,
    src_path: str,
    dst: Segmenter,
    dst_path: str,
    source: Object,
    on_bytes: IoCallback | None = None,
    *,
    record: UploadRecord | None = None,
    part_size: int = PART_SIZE,
) -> CopiedParts:
    """Copy ``src_path`` (as listed: ``source``) to ``dst_path`` in parallel parts.

    Args:
        record: The resume record of ``dst_path``: resume the upload it names, and keep
            the upload for a re-run when the copy fails. None: abort on failure.
        part_size: The part size wanted (raised to the store's minimum).

    Raises:
        StorageError: A read, an upload or the completion failed, or the source changed
            while it was copied (PreconditionFailedError; the upload is then aborted).
    """
    # The listing may be older than the object and carry coarser times than a stat:
    # compare a stat before the first part with one after the last.
    before = src.stat(src_path)
    size = before.content_length if before.content_length is not None else source.content_length
    size = size or 0
    assert isinstance(dst, Storager)
    part = part_size_for(dst, size, part_size)
    version = source_version(record.source if record else "", before, part)
    exact = has_exact_version(before)
    upload, done = _resumed(dst, dst_path, record, version, size, exact=exact)
    if not exact:
        record = None  # a later run could not tell this version from a rewrite: abort
    if upload is None:
        upload = dst.create_multipart(dst_path)
        if record is not None and not record.start(upload.upload_id, version):
            record = None  # cannot be written: this upload is not resumable
    window = threading.BoundedSemaphore(PART_JOBS)
    reused = sum(p.size for p in done.values())
    if on_bytes is not None and reused:
        on_bytes(reused)

    def send(number: int, offset: int) -> Part:
        try:
            data = src.read(src_path, offset=offset, size=min(part, size - offset))
            uploaded = dst.write_multipart(upload, number, data)
            if record is not None:
                record.add(uploaded)
            if on_bytes is not None:
                on_bytes(len(data))
            return uploaded
        finally:
            window.release()

    futures: list[Future[Part]] = []
    try:
        with ThreadPoolExecutor(PART_JOBS, thread_name_prefix="storager-part") as pool:
            for number, offset in enumerate(range(0, size, part), start=1):
                if number in done:
                    continue
                window.acquire()
                if any(f.done() and f.exception() is not None for f in futures):
                    break
                futures.append(pool.submit(send, number, offset))
        sent = [f.result() for f in futures]  # raises the first failed part's error
        _check_unchanged(src, src_path, before)
        parts = sorted([*done.values(), *sent], key=lambda p: p.number)
        dst.complete_multipart(upload, parts)
    except BaseException as exc:
        if record is not None and not isinstance(exc, PreconditionFailedError):
            record.keep()  # with the upload: a re-run goes on from here
            raise
        # The original error says more; an abandoned upload shows no object.
        with contextlib.suppress(StorageError):
            dst.abort_multipart(upload)
        if record is not None:
            record.remove()
        raise
    if record is not None:
        record.remove()
    return CopiedParts(size, reused)


def _resumed(
    dst: Segmenter,
    dst_path: str,
    record: UploadRecord | None,
    version: dict[str, object],
    size: int,
    *,
    exact: bool,
) -> tuple[Multipart | None, dict[int, Part]]:
    """Return the upload ``record`` names and its reusable parts, or ``(None, {})``.

    An upload of another source version, or of a source whose version cannot be told
    exactly (``exact`` False), is aborted: its parts must never be completed into an
    object.
    """
    pending = record.pending() if record is not None else None
    if record is None or pending is None:
        return None, {}
    upload = Multipart(dst_path, pending.upload_id)
    if pending.version != version or not exact:
        with contextlib.suppress(StorageError):
            dst.abort_multipart(upload)
        record.remove()
        return None, {}
    listed: dict[int, list[Part]] = {}
    try:
        for found in dst.list_multipart(upload):
            listed.setdefault(found.number, []).append(found)
    except StorageError:
        record.remove()  # gone (completed, aborted or expired): begin anew
        return None, {}
    part = int(str(version["part_size"]))
    done: dict[int, Part] = {}
    for number, recorded in pending.parts.items():
        expected = min(part, size - (number - 1) * part)
        # Every version the service lists of the number must be the recorded one
        # (SeaweedFS lists a part uploaded twice twice, the old one too).
        versions = listed.get(number, [])
        if (
            versions
            and expected > 0
            and recorded.size == expected
            and all(v.size == expected and _same_etag(v.etag, recorded.etag) for v in versions)
        ):
            done[number] = versions[0]
    record.reopen()  # if it cannot be appended to, the parts sent now are sent again later
    return upload, done


def has_exact_version(source: Object) -> bool:
    """Return whether a stat of ``source`` tells its versions apart well enough to resume.

    An ETag does. Without one only the size and modification time are left, and a time
    in whole seconds (sftp, some file systems) does not show a same-size rewrite within
    the same second: such a source (or one with no time) is copied from the start.
    """
    if source.etag:
        return True
    modified = source.last_modified
    return modified is not None and modified.microsecond != 0


def _same_etag(a: str, b: str) -> bool:
    return bool(a) and a.strip('"') == b.strip('"')


def _check_unchanged(src: Storager, path: str, before: Object) -> None:
    after = src.stat(path)
    same = (
        after.content_length == before.content_length
        and after.etag == before.etag
        and after.last_modified == before.last_modified
    )
    if not same:
        raise PreconditionFailedError(
            "copy", src.metadata().service, path, "the source changed while it was copied"
        )
