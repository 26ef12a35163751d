"""One large object copied as parts uploaded in parallel, into a store that is a Segmenter.

A stream into s3 keeps 4 parts of 5 MiB in flight; a file of known size can do better:
:data:`PART_JOBS` workers each read one range of the source (``read(offset=, size=)``) and
upload it as one part of a multipart upload, so the reads, the uploads and the server's
work on them overlap. Memory is ``PART_JOBS x part size`` (8 x 8 MiB) per object. The
upload is completed only when every part is in; any failure aborts it, so nothing is left
behind. The source is stat'ed before the first part and again after the last: if size,
ETag or modification time differ at all (exactly, not to the second: a same-size rewrite
within one second must show), the upload is aborted and the copy fails, since its parts
may mix two versions.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from storager._errors import PreconditionFailedError, StorageError
from storager._object import Object, Part
from storager._protocols import IoCallback, Segmenter, Storager

__all__ = ["PARTS_MIN_SIZE", "PART_JOBS", "PART_SIZE", "copy_in_parts", "part_size_for"]

#: Parts uploading at once for one object.
PART_JOBS = 8
#: The part size, unless the store needs larger parts to stay within its part count.
PART_SIZE = 8 << 20
#: From this size a copy into a Segmenter goes in parallel parts.
PARTS_MIN_SIZE = 4 * PART_SIZE


def part_size_for(store: Storager, size: int) -> int:
    """Return the part size for an object of ``size`` bytes in ``store``."""
    cap = store.metadata().capability
    part = max(PART_SIZE, cap.multipart_part_size_min or 0)
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
) -> int:
    """Copy ``src_path`` (as listed: ``source``) to ``dst_path`` in parallel parts.

    Returns:
        The bytes copied.

    Raises:
        StorageError: A read, an upload or the completion failed (the upload is aborted),
            or the source changed while it was copied (PreconditionFailedError).
    """
    # The listing may be older than the object and carry coarser times than a stat:
    # compare a stat before the first part with one after the last.
    before = src.stat(src_path)
    size = before.content_length if before.content_length is not None else source.content_length
    size = size or 0
    assert isinstance(dst, Storager)
    part = part_size_for(dst, size)
    upload = dst.create_multipart(dst_path)
    window = threading.BoundedSemaphore(PART_JOBS)

    def send(number: int, offset: int) -> Part:
        try:
            data = src.read(src_path, offset=offset, size=min(part, size - offset))
            uploaded = dst.write_multipart(upload, number, data)
            if on_bytes is not None:
                on_bytes(len(data))
            return uploaded
        finally:
            window.release()

    futures: list[Future[Part]] = []
    try:
        with ThreadPoolExecutor(PART_JOBS, thread_name_prefix="storager-part") as pool:
            for number, offset in enumerate(range(0, size, part), start=1):
                window.acquire()
                if any(f.done() and f.exception() is not None for f in futures):
                    break
                futures.append(pool.submit(send, number, offset))
        parts = [f.result() for f in futures]  # raises the first failed part's error
        _check_unchanged(src, src_path, before)
        dst.complete_multipart(upload, parts)
    except BaseException:
        # The original error says more; an abandoned upload shows no object.
        with contextlib.suppress(StorageError):
            dst.abort_multipart(upload)
        raise
    return size


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
