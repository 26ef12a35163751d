"""The parallel transfer engine of cp, sync and mv.

``-j N`` objects move at once, each on a worker thread. How one object moves:

* same store, and the store is a :class:`~storager.Copier` (or, for mv, a
  :class:`~storager.Mover`): ``copy`` / ``move``, server-side where the service can (the
  bytes never reach this process);
* into a :class:`~storager.Segmenter` (s3...), an object of 32 MiB or more: parts of
  8 MiB read as ranges and uploaded 8 at a time (``_parts.py``), resumable: a re-run
  after a kill sends only the parts missing (``_resume.py``);
* otherwise ``dst.write(path, src.open_reader(path))``, streaming, and parallel where the
  service is: the s3 reader keeps 6 ranged GETs of 4 MiB in flight ahead of it.

Memory is bounded. The listing is read at most ``2 x jobs`` objects ahead of the workers,
and objects of :data:`LARGE` bytes or more (or of unknown size) move at most
:data:`LARGE_JOBS` at a time, so the transfer buffers stay under::

    jobs x LARGE + LARGE_JOBS x max(P, R + W)

where P = 8 parts x 8 MiB = 64 MiB (parallel parts), and R and W are one stream's reader
and writer buffers: for s3, R = 8 MiB buffer + 6 x 4 MiB ahead = 32 MiB and W = 5 x 5 MiB
= 25 MiB; fs and memory stream 1 MiB chunks. With the defaults (``-j 16``, LARGE 8 MiB,
LARGE_JOBS 4) that is at most 128 + 256 = 384 MiB, and a tree of small files needs little
more than the files in flight (see docs/cli.md).

A failed object (a :class:`~storager.StorageError`) is recorded and the rest go on.
Anything else (Ctrl-C, a bug) stops the run: queued transfers are cancelled, the ones
running finish, and nothing is left half-written because every service's write is atomic.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storager._errors import InvalidArgumentError, StorageError
from storager._object import Object
from storager._protocols import Copier, IoCallback, Mover, Segmenter, Storager
from storager.cli._defaults import DEFAULT_JOBS
from storager.cli._identity import Resolver
from storager.cli._parts import PART_SIZE, PARTS_MIN_SIZE, copy_in_parts
from storager.cli._progress import TransferDisplay
from storager.cli._resume import UploadRecord

__all__ = ["DEFAULT_JOBS", "LARGE", "LARGE_JOBS", "Report", "Transfer", "TransferEngine"]

#: Objects of LARGE bytes or more (or of unknown size) moving at once, at most.
LARGE_JOBS = 4
#: From this size an object counts as large: its transfer holds the services' buffers.
LARGE = 8 << 20


@dataclass(frozen=True, slots=True)
class Transfer:
    """One object to move: source and destination paths, its size if known, and why.

    Attributes:
        src: The store-absolute source path.
        dst: The store-absolute destination path.
        size: The source's size in bytes, None when unknown.
        name: How messages and the progress display name it (the relative path).
        reason: Why sync copies it (``new``, ``size``, ``newer``, ``checksum``), or ``""``.
        source: The source object as listed (a large one then goes in parallel parts).
    """

    src: str
    dst: str
    size: int | None
    name: str
    reason: str = ""
    source: Object | None = None


@dataclass
class Report:
    """What a run did; the workers count into it under a lock."""

    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    deleted: int = 0
    resumed_bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_copied(self, size: int) -> None:
        """Count one object of ``size`` bytes copied."""
        with self._lock:
            self.copied += 1
            self.copied_bytes += size

    def count_resumed(self, size: int) -> None:
        """Count ``size`` bytes an interrupted run had uploaded, reused and not sent again."""
        with self._lock:
            self.resumed_bytes += size

    def count_failed(self, name: str, message: str) -> None:
        """Record that ``name`` failed with ``message``."""
        with self._lock:
            self.failed.append((name, message))

    def as_json(self) -> dict[str, Any]:
        """Return the summary as JSON-ready values."""
        return {
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "skipped": self.skipped,
            "skipped_bytes": self.skipped_bytes,
            "deleted": self.deleted,
            "resumed_bytes": self.resumed_bytes,
            "failed": len(self.failed),
            "failures": [{"path": name, "error": message} for name, message in self.failed],
            "seconds": round(self.seconds, 3),
        }


class TransferEngine:
    """Move objects from ``src`` to ``dst`` with ``jobs`` workers.

    Args:
        src: The source store.
        dst: The destination store (may be ``src`` itself).
        jobs: Objects in flight at once.
        display: The progress display, or None.
        move: Delete each source object once it is copied (mv); on one store that is a
            :class:`~storager.Mover`, ``move`` it instead.
        store_urls: The connection strings ``src`` and ``dst`` were opened from (``""``
            for a tree); they tell apart stores of one service on two hosts when a move
            checks that it does not copy an object onto itself, and they key the resume
            records of parts copies.
        resume_dir: Where parts copies keep their resume records (``_resume.py``), or
            None: a failed parts copy is then aborted, not resumable.
        part_size: The part size of parts copies (raised to the store's minimum).
    """

    def __init__(
        self,
        src: Storager,
        dst: Storager,
        *,
        jobs: int = DEFAULT_JOBS,
        display: TransferDisplay | None = None,
        move: bool = False,
        store_urls: tuple[str, str] = ("", ""),
        resume_dir: Path | None = None,
        part_size: int = PART_SIZE,
    ) -> None:
        self._src, self._dst = src, dst
        self._store_urls = store_urls
        self._resume_dir = resume_dir
        self._part_size = part_size
        #: The objects whose parts upload failed or was stopped and is kept for a re-run.
        self.kept_uploads: list[str] = []
        self._jobs = max(1, jobs)
        self._large = threading.BoundedSemaphore(min(LARGE_JOBS, self._jobs))
        self._display = display
        self._move = move
        same = src is dst
        self._mover: Mover | None = src if move and same and isinstance(src, Mover) else None
        self._copier: Copier | None = src if same and isinstance(src, Copier) else None
        # A copy-then-delete onto the object itself would delete it: checked per object.
        self._places: tuple[Resolver, Resolver] | None = None
        if move and self._mover is None:
            self._places = (Resolver(src, store_urls[0]), Resolver(dst, store_urls[1]))

    def run(self, transfers: Iterable[Transfer], report: Report) -> None:
        """Move every transfer; each failure goes into ``report``, so does every copy.

        Raises:
            BaseException: Whatever stopped the run that is not a StorageError of one
                object (Ctrl-C, a failed listing, a bug), after the running transfers end.
        """
        started = time.monotonic()
        if self._jobs == 1:
            try:
                for item in transfers:
                    self._plan(item)
                    self._one(item, report)
            finally:
                report.seconds += time.monotonic() - started
            return
        window = threading.BoundedSemaphore(2 * self._jobs)
        broken: list[BaseException] = []

        def settle(future: Future[None]) -> None:
            window.release()
            if not future.cancelled() and future.exception() is not None:
                broken.append(future.exception())  # type: ignore[arg-type]

        executor = ThreadPoolExecutor(self._jobs, thread_name_prefix="storager-transfer")
        try:
            for item in transfers:
                self._plan(item)
                window.acquire()
                if broken:
                    break
                executor.submit(self._one, item, report).add_done_callback(settle)
            executor.shutdown(wait=True)
        except BaseException:
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            report.seconds += time.monotonic() - started
        if broken:
            raise broken[0]

    def _plan(self, item: Transfer) -> None:
        if self._display is not None:
            self._display.plan(item.size)

    def one(self, item: Transfer, report: Report | None = None) -> int:
        """Move one object now, shown on the display; return its size in bytes.

        Bytes reused from an interrupted upload are counted into ``report``.

        Raises:
            StorageError: The copy, the move or the delete failed.
        """
        display = self._display
        self._plan(item)
        token = display.begin(item.name, item.size) if display is not None else 0
        ok = False
        size = 0
        try:
            size = self._move_object(item, token, report)
            ok = True
        finally:
            if display is not None:
                display.end(token, ok=ok, counted_bytes=size if self._server_side else 0)
        return size

    @property
    def _server_side(self) -> bool:
        return self._mover is not None or self._copier is not None

    def _one(self, item: Transfer, report: Report) -> None:
        """Move one object of a run; a StorageError is recorded, anything else goes up."""
        large = item.size is None or item.size >= LARGE
        display = self._display
        token = display.begin(item.name, item.size) if display is not None else 0
        ok = False
        size = 0
        if large:
            self._large.acquire()
        try:
            size = self._move_object(item, token, report)
            report.count_copied(size)
            ok = True
        except StorageError as exc:
            report.count_failed(item.name, str(exc))
        finally:
            if large:
                self._large.release()
            if display is not None:
                display.end(token, ok=ok, counted_bytes=size if self._server_side else 0)

    def _move_object(self, item: Transfer, token: int, report: Report | None) -> int:
        """Copy (or move) one object; return its size (as listed, else as streamed)."""
        if self._mover is not None:
            self._mover.move(item.src, item.dst)
            return item.size or 0
        if self._places is not None:
            src_place = self._places[0].place(item.src)
            if src_place.same(self._places[1].place(item.dst)):
                raise InvalidArgumentError(
                    "mv",
                    self._src.metadata().service,
                    item.src,
                    f"is the same object as the destination {item.dst} ({src_place.path}); "
                    "not moved, not deleted",
                )
        if self._copier is not None:
            self._copier.copy(item.src, item.dst)
            size = item.size or 0
        else:
            streamed = self._stream(item, token, report)
            size = item.size if item.size is not None else streamed
        if self._move:
            self._src.delete(item.src)
        return size

    def _stream(self, item: Transfer, token: int, report: Report | None) -> int:
        """Copy one object as ``dst.write(path, src.open_reader(path))``; return its bytes."""
        display = self._display
        moved = [0]

        def count(n: int) -> None:
            moved[0] += n
            if display is not None:
                display.advance(token, n)

        callback: IoCallback = count
        source, dst = item.source, self._dst
        if (
            source is not None
            and (source.content_length or 0) >= PARTS_MIN_SIZE
            and isinstance(dst, Segmenter)
        ):
            record = self._record(item)
            try:
                copied = copy_in_parts(
                    self._src,
                    item.src,
                    dst,
                    item.dst,
                    source,
                    callback,
                    record=record,
                    part_size=self._part_size,
                )
            except BaseException:
                if record is not None and record.kept:
                    self.kept_uploads.append(item.name)
                raise
            if report is not None and copied.reused:
                report.count_resumed(copied.reused)
            return copied.size
        with self._src.open_reader(item.src) as reader:
            dst.write(item.dst, reader, io_callback=callback)
        return moved[0]

    def _record(self, item: Transfer) -> UploadRecord | None:
        """Return the resume record of ``item``'s upload, or None when not kept."""
        src_url, dst_url = self._store_urls
        if self._resume_dir is None or not dst_url:
            return None
        # Hashed: the source URL may hold a credential, and the record is a plain file.
        source = hashlib.sha256(f"{src_url}\n{item.src}".encode()).hexdigest()
        return UploadRecord(self._resume_dir, dst_url, self._dst, item.dst, source)
