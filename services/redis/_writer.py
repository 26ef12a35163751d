"""The write path, once for the sync store and its async twin: a plan (see ``_plan``).

Data that ends within ``inline_limit`` bytes goes into the manifest itself (no chunk,
one round trip). Anything longer is cut into ``chunk_size`` chunks of a new generation:
the generation is registered first (with a bound on its chunk count), then each batch
of chunks is sent as one pipeline after a heartbeat that keeps the registration fresh
and raises the bound, so at most one batch is in flight and in memory, and a crash at
any point leaves only chunks that the registration accounts for. Nothing is visible
until the commit: one ``MULTI``/``EXEC`` stages the manifest and runs the commit script
(``_scripts``), which checks the write's conditions and swaps the manifest in. A write
that fails or is refused discards its generation before the error goes on.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from storager._errors import InvalidArgumentError, PairInvalidError
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback
from storager.services.redis._errors import map_commit_error
from storager.services.redis._keys import Keys, encode_path
from storager.services.redis._manifest import manifest_fields, parse_mtime
from storager.services.redis._plan import NEXT_PIECE, Piece, Plan, RoundTrip
from storager.services.redis._scripts import Scripts, commit_args, refusal
from storager.services.redis._sweep import discard

__all__ = ["Body", "WriteLayout", "small_body", "write"]

SERVICE = "redis"

#: At most this many bytes of chunks in flight per batch.
BATCH_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class WriteLayout:
    """How one store lays out what it writes.

    Attributes:
        keys: The namespace's keys.
        chunk_size: The size of every chunk but an object's last.
        inline_limit: Objects up to this many bytes live inside their manifest.
    """

    keys: Keys
    chunk_size: int
    inline_limit: int


@dataclass(slots=True)
class Body:
    """A write's data as stored: inline bytes or a generation of chunks.

    Attributes:
        size: The length in bytes.
        md5: The MD5 digest of the data when one was asked for.
        inline: The bytes, when small enough to live in the manifest.
        generation: The generation holding the chunks, otherwise.
        chunks: How many chunks.
    """

    size: int
    md5: bytes | None
    inline: Piece | None
    generation: bytes | None
    chunks: int


def small_body(data: object, inline_limit: int, *, want_md5: bool) -> Body | None:
    """Return the Body of bytes-like ``data`` that fits inline, without a copy; else None.

    The common case of a small write skips the streaming machinery entirely.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    if len(view) > inline_limit:
        return None
    md5 = hashlib.md5(view, usedforsecurity=False).digest() if want_md5 else None
    return Body(len(view), md5, view, None, 0)


def write(
    layout: WriteLayout,
    path: str,
    data: object,
    *,
    shown: str,
    etag: str,
    size: int | None,
    content_md5: str | None,
    content_type: str | None,
    expire: int | None,
    if_match: str | None,
    if_none_match: str | None,
    io_callback: IoCallback | None,
    user_metadata: Mapping[str, str] | None,
) -> Plan[Object]:
    """Return the plan of a whole write; it returns the written Object (named ``shown``).

    Small bytes-like ``data`` (no ``size`` given) is taken as it is, ``io_callback``
    told here; any other data the plan asks of the driver as pieces
    (``NEXT_PIECE``), which the driver reads from the caller's checked stream
    (``iter_chunks``/``async_chunks``, which tell ``io_callback`` themselves).

    Raises:
        PairInvalidError: ``expire`` is 0.
        InvalidArgumentError: The data does not match ``content_md5``.
        StorageError: The commit failed or was refused (see ``_scripts.REFUSALS``).
    """
    if expire == 0:
        raise PairInvalidError("write", SERVICE, path, "pair 'expire' must be at least 1 second")
    keys = layout.keys
    want_md5 = content_md5 is not None
    body = None if size is not None else small_body(data, layout.inline_limit, want_md5=want_md5)
    if body is not None:
        if io_callback is not None and body.size:
            io_callback(body.size)
    else:
        body = yield from _store_body(layout, path, want_md5=want_md5)
    if content_md5 is not None and base64.b64encode(body.md5 or b"").decode() != content_md5:
        yield from discard(keys, body.generation, body.chunks)
        raise InvalidArgumentError("write", SERVICE, path, "content_md5 does not match the data")
    fields: list[Piece] = [b"kind", b"f", b"etag", etag.encode()]
    fields += manifest_fields(
        size=body.size,
        content_type=content_type,
        content_md5=content_md5,
        user_metadata=user_metadata,
        data=body.inline,
        generation=body.generation,
        chunk_size=layout.chunk_size,
        chunks=body.chunks,
    )
    staged = keys.staged(etag)
    try:
        reply = yield from Scripts.commit.staged_steps(
            staged,
            fields,
            [keys.manifest(encode_path(path)), staged],
            commit_args(body.generation, body.chunks, if_match, if_none_match, expire),
        )
    except Exception as exc:
        # The generation stays registered: if the commit did not run, the sweep
        # takes it once its registration is older than the grace period.
        raise map_commit_error(exc, "write", SERVICE, path) from exc
    if reply[0] != b"ok":
        yield from discard(keys, body.generation, body.chunks)
        raise refusal(reply[0], "write", SERVICE, path)
    return Object(
        shown,
        ObjectMode.READ,
        content_length=body.size,
        content_type=content_type,
        content_md5=content_md5,
        etag=etag,
        last_modified=parse_mtime(reply[1]),
        user_metadata=dict(user_metadata) if user_metadata else {},
    )


class _Cutter:
    """Cuts the caller's pieces into chunks of exactly ``size`` bytes (the last may be
    shorter): large pieces of bytes are sliced without a copy, small ones gathered; a
    piece of a mutable buffer is copied once, since the caller may refill it."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._buffer = bytearray()
        self._ready: deque[Piece] = deque()
        self._ended = False

    def next_chunk(self) -> Plan[Piece | None]:
        """Return the plan that answers the next chunk, or None after the last."""
        while not self._ready and not self._ended:
            piece = yield NEXT_PIECE
            if piece is None:
                self._ended = True
                if self._buffer:
                    self._ready.append(bytes(self._buffer))
            else:
                self._cut(piece)
        return self._ready.popleft() if self._ready else None

    def _cut(self, piece: Piece) -> None:
        size = self._size
        view = memoryview(piece).cast("B")
        if not _immutable(piece):
            # Up to a batch of chunks waits before it is sent, and the source may
            # refill the same buffer for its next piece: keep views only of bytes.
            view = memoryview(view.tobytes())
        if self._buffer:
            take = size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < size:
                return
            self._ready.append(bytes(self._buffer))
            self._buffer = bytearray()
        while len(view) >= size:
            self._ready.append(view[:size])
            view = view[size:]
        if len(view):
            self._buffer += view


def _immutable(piece: Piece) -> bool:
    """Whether ``piece`` (or the object it views) can never change under a view."""
    if isinstance(piece, memoryview):
        return isinstance(piece.obj, bytes)
    return isinstance(piece, bytes)


def _store_body(layout: WriteLayout, path: str, *, want_md5: bool) -> Plan[Body]:
    """Return the plan that stores the caller's data and answers where it is.

    On any failure (the data source's own included) the chunks sent so far are
    discarded before the exception goes on.
    """
    keys, chunk_size = layout.keys, layout.chunk_size
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    cutter = _Cutter(chunk_size)
    first = (yield from cutter.next_chunk()) or b""
    second = (yield from cutter.next_chunk()) if len(first) == chunk_size else None
    if second is None and len(first) <= layout.inline_limit:
        if md5 is not None:
            md5.update(first)
        return Body(len(first), md5.digest() if md5 else None, first, None, 0)

    generation = secrets.token_hex(16).encode()
    per_batch = max(1, min(64, BATCH_BYTES // chunk_size))
    sent = size = 0
    try:
        batch = [first] if second is None else [first, second]
        while batch:
            while len(batch) < per_batch:
                more = yield from cutter.next_chunk()
                if more is None:
                    break
                batch.append(more)
            alive = yield from Scripts.heartbeat.steps(
                [keys.pending, keys.chunk_counts],
                [generation, sent + len(batch), b"1" if sent == 0 else b"0"],
            )
            if not alive:
                raise refusal(b"swept", "write", SERVICE, path)
            commands = []
            for chunk in batch:
                commands.append(("SET", keys.chunk(generation, sent), chunk))
                if md5 is not None:
                    md5.update(chunk)
                size += len(chunk)
                sent += 1
            yield RoundTrip("pipeline", commands)
            del commands
            batch = []
            more = yield from cutter.next_chunk()
            if more is not None:
                batch.append(more)
    except GeneratorExit:
        raise  # the plan was abandoned: nothing more may be sent
    except BaseException:
        yield from discard(keys, generation, sent + per_batch)
        raise
    return Body(size, md5.digest() if md5 else None, None, generation, sent)
