"""The file objects ``StoragerFileSystem.open`` returns.

Reading goes through the store's ``open_reader`` (one streaming reader per file) under
fsspec's block cache, so sequential reads are read ahead and ``readinto`` works.
Writing is committed on ``close`` and discarded when the ``with`` block raises: on a
store that uploads in parts (``Segmenter``) each full block becomes a part and the upload
completes on close (or is aborted); on any other store the blocks go to a spooled
temporary file (in memory up to ``SPOOL_MEMORY``, then on local disk) that one streamed
``write`` sends on close. A file that fits in one block is one plain ``write`` either way.
"""

from __future__ import annotations

import io
import tempfile
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from fsspec.spec import AbstractBufferedFile

from storager._errors import AlreadyExistsError, CapabilityInsufficientError
from storager._object import Multipart, Part
from storager._protocols import Appender, Segmenter, Storager

if TYPE_CHECKING:
    from storager.fsspec._filesystem import StoragerFileSystem

__all__ = ["DEFAULT_BLOCK_SIZE", "SPOOL_MEMORY", "StoragerReadFile", "StoragerWriteFile"]

#: Bytes per read-ahead block and per uploaded part, unless ``block_size`` says otherwise.
DEFAULT_BLOCK_SIZE = 8 << 20
#: Bytes a write file keeps in memory before spooling to local disk (non-Segmenter stores).
SPOOL_MEMORY = 16 << 20


class StoragerReadFile(AbstractBufferedFile):  # type: ignore[misc]
    """A read-only, seekable file over one reader from ``store.open_reader``."""

    def __init__(
        self,
        fs: StoragerFileSystem,
        path: str,
        *,
        block_size: int | None,
        cache_options: dict[str, Any] | None,
        cache_type: str = "readahead",
    ) -> None:
        # open_reader raises NotFoundError here, when the file is opened.
        self._reader: BinaryIO = fs.store.open_reader(path)
        size = self._reader.seek(0, io.SEEK_END)
        super().__init__(
            fs,
            path,
            mode="rb",
            block_size=block_size or DEFAULT_BLOCK_SIZE,
            cache_type=cache_type,
            cache_options=cache_options,
            size=size,
        )

    def _fetch_range(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        self._reader.seek(start)
        return bytes(self._reader.read(end - start))

    def close(self) -> None:
        """Close the file and its reader."""
        try:
            super().close()
        finally:
            self._reader.close()


class StoragerWriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """A write-only file committed on ``close``, discarded when its ``with`` block raises.

    Modes: ``wb`` (replace), ``xb`` (refused if the file exists), ``ab`` (append; the store
    must be an ``Appender``). With ``autocommit=False`` (an fsspec transaction) ``close``
    only stages the data; ``commit`` publishes it and ``discard`` drops it.
    """

    def __init__(
        self,
        fs: StoragerFileSystem,
        path: str,
        mode: str,
        *,
        block_size: int | None,
        autocommit: bool,
    ) -> None:
        store = fs.store
        if mode == "ab" and not isinstance(store, Appender):
            raise CapabilityInsufficientError("open", fs.service, path, "append needs an Appender")
        if mode == "xb" and fs.exists(path):
            raise AlreadyExistsError("open", fs.service, path, "mode 'xb' and the file exists")
        part_min = store.metadata().capability.multipart_part_size_min or 0
        super().__init__(
            fs,
            path,
            mode=mode,
            block_size=max(block_size or DEFAULT_BLOCK_SIZE, part_min),
            autocommit=autocommit,
        )
        self._store: Storager = store
        self._multipart: Multipart | None = None
        self._parts: list[Part] = []
        self._spool: IO[bytes] | None = None
        self._pending: bytes | None = None  # the whole file, when it fit in one block
        self._committed = False

    def _initiate_upload(self) -> None:
        # Nothing yet: a file that fits in one block is sent by one write on close.
        pass

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        started = self._multipart is not None or self._spool is not None
        if final and not started:
            self._pending = data
        elif isinstance(self._store, Segmenter) and self.mode != "ab":
            if self._multipart is None:
                self._multipart = self._store.create_multipart(self.path)
            if data or not self._parts:
                number = len(self._parts) + 1
                self._parts.append(self._store.write_multipart(self._multipart, number, data))
        else:
            if self._spool is None:
                # Closed by commit or discard, which outlive this call.
                self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
            self._spool.write(data)
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Publish what was written: complete the upload, or send the data."""
        if self._committed:
            return
        self._committed = True
        try:
            if self._multipart is not None:
                assert isinstance(self._store, Segmenter)
                self._store.complete_multipart(self._multipart, self._parts)
                self._multipart = None
            elif self._spool is not None:
                self._spool.seek(0)
                self._send(self._spool)
            else:
                self._send(self._pending or b"")
        except BaseException:
            self._drop()
            raise
        self._drop()

    def _send(self, data: bytes | IO[bytes]) -> None:
        if self.mode == "ab":
            assert isinstance(self._store, Appender)
            self._store.append(self.path, data)
        elif self.mode == "xb" and _accepts(self._store, "write", "if_none_match"):
            self._store.write(self.path, data, if_none_match="*")
        else:
            self._store.write(self.path, data)

    def discard(self) -> None:
        """Drop what was written; nothing becomes visible."""
        self._committed = True
        self._drop()

    def _drop(self) -> None:
        multipart, self._multipart = self._multipart, None
        if multipart is not None:
            assert isinstance(self._store, Segmenter)
            self._store.abort_multipart(multipart)
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()
        self._pending = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.discard()
        finally:
            self.closed = True


def _accepts(store: Storager, op: str, pair: str) -> bool:
    return pair in store.metadata().capability.operations.get(op, frozenset())
