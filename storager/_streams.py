"""Streaming helpers shared by services: chunked input, ranged readers."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from storager._errors import InvalidArgumentError
from storager._protocols import IoCallback, WriteData

__all__ = [
    "CHUNK_SIZE",
    "BytesReader",
    "RangeReader",
    "iter_chunks",
    "mark_source_error",
    "source_error",
]

#: How much a streaming write reads from its source at a time.
CHUNK_SIZE = 1 << 20

_BYTES_LIKE = (bytes, bytearray, memoryview)


def iter_chunks(
    op: str,
    service: str,
    path: str,
    data: WriteData,
    *,
    size: int | None = None,
    io_callback: IoCallback | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes | bytearray | memoryview]:
    """Yield ``data`` in chunks of at most about ``chunk_size`` bytes.

    Bytes-like data is yielded whole (it is in memory already); a file object is read
    ``chunk_size`` at a time; an iterable is passed through. When ``size`` is given, the
    data must have exactly that length: the iterator raises InvalidArgumentError as
    soon as it sees more, or at the end if it saw less, so the caller can discard what
    it wrote before anything becomes visible.

    Raises:
        InvalidArgumentError: ``data`` is not bytes, a binary file or an iterable of
            bytes, or its length differs from ``size``.
    """
    total = 0
    for chunk in _raw_chunks(op, service, path, data, chunk_size, size):
        if not isinstance(chunk, _BYTES_LIKE):
            raise InvalidArgumentError(
                op, service, path, f"data yielded {type(chunk).__name__}, expected bytes"
            )
        n = len(chunk) if not isinstance(chunk, memoryview) else chunk.nbytes
        if not n:
            continue
        total += n
        if size is not None and total > size:
            raise InvalidArgumentError(
                op, service, path, f"data is longer than size={size}; nothing was written"
            )
        if io_callback is not None:
            io_callback(n)
        yield chunk
    if size is not None and total != size:
        raise InvalidArgumentError(
            op, service, path, f"data has {total} bytes, not size={size}; nothing was written"
        )


def _raw_chunks(
    op: str, service: str, path: str, data: WriteData, chunk_size: int, size: int | None
) -> Iterator[Any]:
    if isinstance(data, _BYTES_LIKE):
        yield data
        return
    if isinstance(data, str):
        raise InvalidArgumentError(op, service, path, "data is a str: encode it to bytes first")
    read = getattr(data, "read", None)
    if read is not None:
        # Read one byte past a declared size so a longer source is noticed.
        remaining = None if size is None else size + 1
        while True:
            want = chunk_size if remaining is None else min(chunk_size, remaining)
            if want <= 0:
                return
            try:
                chunk = read(want)
            except Exception as exc:
                mark_source_error(exc)
                raise
            if not chunk:
                return
            if isinstance(chunk, str):
                raise InvalidArgumentError(op, service, path, "data is a text file: open it 'rb'")
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    try:
        iterator = iter(data)
    except TypeError:
        raise InvalidArgumentError(
            op,
            service,
            path,
            f"data is {type(data).__name__}: expected bytes, a binary file or an iterable of bytes",
        ) from None
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            mark_source_error(exc)
            raise
        yield chunk


_SOURCE_MARK = "_storager_source_error"


def mark_source_error(exc: BaseException) -> BaseException:
    """Mark an exception raised by the caller's own data source, and return it.

    A write's data is the caller's code: when it fails, the caller gets its own
    exception back unchanged, not a storager error about the service.
    """
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _SOURCE_MARK, True)
    return exc


def source_error(exc: BaseException) -> BaseException | None:
    """Return the caller's data-source exception behind ``exc``, if there is one."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 16:
        if getattr(current, _SOURCE_MARK, False):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


class RangeReader(io.RawIOBase):
    """A seekable raw reader over ``fetch(offset, size)``.

    ``fetch`` returns at most ``size`` bytes from ``offset`` (bytes or a memoryview):
    fewer when the source serves a range in pieces, none only at the end. Services
    wrap the reader in :class:`io.BufferedReader`; each buffer refill becomes one
    ranged request, so memory stays bounded by the buffer size. ``fetch_into(offset,
    view)``, where given, serves ``readinto`` instead: it fills ``view`` (no further
    than the end) and returns how many bytes it wrote, so a source that can land
    bytes in the caller's buffer spares a copy.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes | memoryview],
        length: int,
        *,
        on_close: Callable[[], None] | None = None,
        fetch_into: Callable[[int, memoryview], int] | None = None,
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self._fetch_into = fetch_into
        self._length = length
        self._pos = 0
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._length - self._pos)
        if want <= 0:
            return 0
        if self._fetch_into is not None:
            n = self._fetch_into(self._pos, view[:want])
        else:
            data = self._fetch(self._pos, want)
            n = len(data)
            view[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        parts = []
        while self._pos < self._length:
            data = self._fetch(self._pos, self._length - self._pos)
            if not data:
                break
            parts.append(data)
            self._pos += len(data)
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            self._on_close()
        super().close()


class BytesReader(io.BytesIO):
    """A read-only, seekable reader over bytes already in memory (no copy)."""

    def writable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        raise io.UnsupportedOperation("reader is read-only")

    def writelines(self, lines: Any) -> None:
        raise io.UnsupportedOperation("reader is read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("reader is read-only")
