"""Bounded, pipelined reads and writes over paramiko's ``SFTPFile``.

``SFTPFile.read(n)`` sends one 32 KiB request at a time and grows its buffer by
concatenation, which is slow and quadratic for large ``n``. ``readv`` pipelines its
requests, so ranges are read as lists of request-sized blocks, a few MiB per call.

Pipelined writes (``set_pipelined``) leave their acknowledgements unread. paramiko
drops an acknowledgement that another call on the same SFTP session reads first, and
the writer then waits forever for it; it also drops any error status it carries. So
every function here leaves nothing outstanding on the session when it returns:
:func:`write_chunk` waits for the acknowledgements of the chunk it sent, which also
surfaces a failed write as an error. Callers hold the channel's lock around these
functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import paramiko

__all__ = ["BLOCK", "READ_CHUNK", "iter_range", "open_pipelined", "read_range", "write_chunk"]

#: paramiko's largest SFTP read request.
BLOCK = paramiko.SFTPFile.MAX_REQUEST_SIZE
#: How much one ``readv`` call asks for (and so the most it buffers).
READ_CHUNK = 4 << 20
# Every block of one readv call is requested at once: READ_CHUNK bounds what is in flight.
_IN_FLIGHT = None


def _read_blocks(f: paramiko.SFTPFile, offset: int, size: int) -> bytes:
    if size <= BLOCK:
        f.seek(offset)
        return f.read(size)
    blocks = [(pos, min(BLOCK, offset + size - pos)) for pos in range(offset, offset + size, BLOCK)]
    out = bytearray()
    for block in f.readv(blocks, max_concurrent_prefetch_requests=_IN_FLIGHT):
        out += block
    return bytes(out)


def read_range(f: paramiko.SFTPFile, offset: int, size: int) -> bytes:
    """Return ``size`` bytes from ``offset``; the range must lie inside the file.

    A range past the end of the file would leave paramiko holding an EOF error for the
    next call on the file, so callers clamp ranges to the size they stat'ed.
    """
    if size <= READ_CHUNK:
        return _read_blocks(f, offset, size)
    out = bytearray()
    end = offset + size
    while offset < end:
        n = min(READ_CHUNK, end - offset)
        data = _read_blocks(f, offset, n)
        if not data:
            break
        out += data
        offset += len(data)
    return bytes(out)


def iter_range(
    locked: Callable[[Callable[[], bytes]], bytes], f: paramiko.SFTPFile, length: int
) -> Iterator[bytes]:
    """Yield the first ``length`` bytes of ``f`` in chunks of at most ``READ_CHUNK``.

    ``locked(fn)`` runs ``fn`` under the channel's lock, so nothing is held between
    chunks.
    """
    offset = 0
    while offset < length:
        n = min(READ_CHUNK, length - offset)
        data = locked(functools.partial(_read_blocks, f, offset, n))
        if not data:
            return
        offset += len(data)
        yield data


def _can_drain(f: paramiko.SFTPFile) -> bool:
    return hasattr(f, "_reqs") and hasattr(f.sftp, "_read_response")


def open_pipelined(sftp: paramiko.SFTPClient, path: str, mode: str) -> paramiko.SFTPFile:
    """Open ``path`` for writing, pipelined when its acknowledgements can be awaited."""
    f = sftp.open(path, mode)
    # paramiko keeps no public way to await pipelined acknowledgements; without its
    # internals, writes go one request at a time rather than risk a hang.
    f.set_pipelined(_can_drain(f))
    return f


def write_chunk(f: paramiko.SFTPFile, chunk: memoryview) -> None:
    """Write ``chunk`` with pipelined requests, then wait for every acknowledgement.

    Raises:
        OSError: The server refused a write (paramiko's status mapping).
    """
    f.write(chunk)
    if not f.pipelined:
        return
    reqs = f._reqs  # type: ignore[attr-defined]
    read_response = f.sftp._read_response  # type: ignore[attr-defined]
    while reqs:
        read_response(reqs.popleft())
