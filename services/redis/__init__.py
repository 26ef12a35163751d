"""The redis service: objects in Redis or Redis Cluster, over redis-py.

Layout (see ``_keys``): a Hash manifest per object, small objects inline in it, larger
ones as immutable chunks of a per-write generation; a Sorted Set index of every path
for ordered, paged listing. A write stores its data first (``_writer``), then one
server-side script (``_scripts``) checks the write's conditions and swaps the manifest,
the index entry and the old generation's reference in one atomic step, so readers see
the old object or the new one whole. Generations nobody uses are deleted by the sweep
(``_sweep``) after a grace period.
"""

from __future__ import annotations

import io
import itertools
import logging
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import BytesReader, RangeReader, iter_chunks
from storager.services.redis import _changes as changes
from storager.services.redis._connection import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    ConnectOptions,
    OptionError,
    connect,
    parse_credential,
)
from storager.services.redis._errors import map_redis_error
from storager.services.redis._generated import RedisGenerated
from storager.services.redis._keys import (
    DEFAULT_NAMESPACE,
    Keys,
    NamespaceError,
    encode_path,
)
from storager.services.redis._link import Link
from storager.services.redis._listing import list_index
from storager.services.redis._manifest import (
    STAT_FIELDS,
    Manifest,
)
from storager.services.redis._plan import run
from storager.services.redis._reader import ChunkMissing, ChunkRange, read_chunks
from storager.services.redis._reply_wait import DEFAULT_WINDOW, MAX_WINDOW
from storager.services.redis._scripts import Scripts
from storager.services.redis._sweep import Sweeper, SweepReport
from storager.services.redis._writer import WriteLayout
from storager.services.redis._writer import write as write_plan

if TYPE_CHECKING:
    from storager.aio._native import NativeAsync

__all__ = ["RedisStorage", "SweepReport"]

logger = logging.getLogger("storager.services.redis")

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_INLINE_LIMIT = 64 << 10
DEFAULT_SWEEP_GRACE = 60.0
MAX_BUSY_POLL_US = round(MAX_WINDOW * 1e6)
#: At least this many seconds between two sweeps a store runs after its own commits.
_SWEEP_INTERVAL = 10.0
_CHUNK_SIZE_MIN = 1 << 10
_CHUNK_SIZE_MAX = 64 << 20
_READ_FIELDS = (b"kind", b"size", b"gen", b"csize", b"data")


class _Layout(NamedTuple):
    """Where a file's bytes are: inline ``data``, or chunks of ``generation``."""

    size: int
    data: bytes | None
    generation: bytes | None
    chunk_size: int


class RedisStorage(RedisGenerated):
    """A store in Redis or Redis Cluster; see the module docstring.

    Example:
        >>> store = RedisStorage(host="127.0.0.1", port=6379, namespace="app1")
        >>> store.write("a/b.txt", b"hi").content_length
        2
    """

    _link: Link

    # -- construction ------------------------------------------------------------------

    def _open(
        self,
        *,
        host: str,
        port: int | None,
        db: int | None,
        credential: str | None,
        namespace: str | None,
        cluster: bool | None,
        tls: bool | None,
        tls_ca_file: str | None,
        chunk_size: int | None,
        inline_limit: int | None,
        max_connections: int | None,
        timeout: float | None,
        sweep_grace: float | None,
        busy_poll_us: int | None,
    ) -> None:
        port = DEFAULT_PORT if port is None else port
        shown = f"{host}:{port}"
        try:
            username, password = parse_credential(credential)
            self._keys = Keys.for_namespace(DEFAULT_NAMESPACE if namespace is None else namespace)
            self._chunk_size, self._inline_limit = _sizes(chunk_size, inline_limit)
            if max_connections == 0:
                raise OptionError("pair 'max_connections' must be at least 1")
            if timeout == 0:
                raise OptionError("pair 'timeout' must be more than 0")
            if busy_poll_us is not None and not 0 <= busy_poll_us <= MAX_BUSY_POLL_US:
                raise OptionError(f"pair 'busy_poll_us' must be 0 to {MAX_BUSY_POLL_US}")
            options = ConnectOptions(
                host=host,
                port=port,
                db=db or 0,
                cluster=bool(cluster),
                tls=bool(tls) or tls_ca_file is not None,
                tls_ca_file=tls_ca_file,
                max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
                timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
                username=username,
                password=password,
                busy_poll=DEFAULT_WINDOW if busy_poll_us is None else busy_poll_us / 1e6,
            )
            self._grace = DEFAULT_SWEEP_GRACE if sweep_grace is None else float(sweep_grace)
            # A store sweeps a little now and then from its own commits (see _sweep_now_and_then).
            self._next_sweep = time.monotonic() + _SWEEP_INTERVAL
            self._link = connect(options)
            # Fail here, not at the first operation, when the server or credential is wrong.
            self._link.call("PING")
        except (OptionError, NamespaceError) as exc:
            self._close()
            raise PairInvalidError("new", self.service_name, shown, str(exc)) from None
        except StorageError:
            self._close()
            raise
        except Exception as exc:
            self._close()
            raise self._map_error(exc, "new", shown) from exc
        self._sweeper = Sweeper(self._link, self._keys)
        self._layout_of_writes = WriteLayout(self._keys, self._chunk_size, self._inline_limit)
        self._options = options
        # A write's etag: this store's random prefix and a count, unique without a
        # call to the OS's random source per write (etags are not secrets).
        self._etag_prefix = secrets.token_hex(8)
        self._etag_count = itertools.count()
        where = f"{host}:{port}" + (" (cluster)" if options.cluster else f"/{options.db}")
        self._name = f"{where}/{self._keys.namespace}"

    def _close(self) -> None:
        link: Link | None = getattr(self, "_link", None)  # None when connecting failed
        if link is not None:
            link.close()

    # -- Storager -----------------------------------------------------------------------

    def _has_children(self, path: str) -> bool:
        """Whether anything lies under ``path`` (a directory, implied or explicit)."""
        return run(changes.has_children(self._keys, path), self._link)

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        layout = self._layout("read", path)
        start, length = _clamp(layout.size, offset, size)
        if layout.data is not None:
            data = (
                layout.data[start : start + length]
                if start or length < layout.size
                else layout.data
            )
        else:
            data = self._read_chunks("read", path, layout, start, length)
        if io_callback is not None and data:
            io_callback(len(data))
        return data

    def _layout(self, op: str, path: str) -> _Layout:
        """Return where the bytes of the file at ``path`` are.

        Raises:
            NotFoundError: Nothing is at ``path``.
            ObjectModeInvalidError: ``path`` names a directory.
        """
        kind, size, generation, chunk_size, data = self._link.call(
            "HMGET", self._keys.manifest(encode_path(path)), *_READ_FIELDS
        )
        if kind != b"f":
            if kind is not None or self._has_children(path):
                raise ObjectModeInvalidError(op, self.service_name, path, "is a directory")
            raise NotFoundError(op, self.service_name, path)
        return _Layout(int(size), data, generation, int(chunk_size or 0))

    def _read_chunks(self, op: str, path: str, layout: _Layout, start: int, length: int) -> bytes:
        assert layout.generation is not None
        try:
            return read_chunks(self._link, self._chunk_range(layout, start, length))
        except ChunkMissing:
            raise NotFoundError(
                op,
                self.service_name,
                path,
                "the object was replaced and the version being read was swept",
            ) from None

    def _chunk_range(self, layout: _Layout, start: int, length: int) -> ChunkRange:
        assert layout.generation is not None
        return ChunkRange(
            self._keys, layout.generation, layout.chunk_size, layout.size, start, length
        )

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        layout = self._layout("open_reader", path)
        start, length = _clamp(layout.size, offset, size)
        if layout.data is not None:
            return BytesReader(layout.data[start : start + length])

        def fetch(position: int, count: int) -> bytes:
            try:
                return self._read_chunks("open_reader", path, layout, start + position, count)
            except StorageError:
                raise
            except Exception as exc:
                raise self._map_error(exc, "open_reader", path) from exc

        raw = RangeReader(fetch, length)
        return io.BufferedReader(raw, buffer_size=self._chunk_size)

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        content_md5: str | None,
        content_type: str | None,
        expire: int | None,
        if_match: str | None,
        if_none_match: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        plan = write_plan(
            self._layout_of_writes,
            path,
            data,
            shown=self._rel(path),
            etag=self._new_etag(),
            size=size,
            content_md5=content_md5,
            content_type=content_type,
            expire=expire,
            if_match=if_match,
            if_none_match=if_none_match,
            io_callback=io_callback,
            user_metadata=user_metadata,
        )
        written = run(
            plan,
            self._link,
            lambda: iter_chunks(
                "write", self.service_name, path, data, size=size, io_callback=io_callback
            ),
        )
        self._sweep_now_and_then()
        return written

    def _new_etag(self) -> str:
        return f"{self._etag_prefix}{next(self._etag_count):x}"

    def _stat(self, path: str) -> Object:
        key = self._keys.manifest(encode_path(path))
        manifest = Manifest.parse(self._link.call("HMGET", key, *STAT_FIELDS))
        if manifest is not None:
            return manifest.to_object(self._rel(path))
        if self._has_children(path):
            return Object(self._rel(path.rstrip("/") + "/"), ObjectMode.DIR)
        if not path.endswith("/"):
            # A marker of an empty directory named without its slash.
            marker = Manifest.parse(self._link.call("HMGET", key + b"/", *STAT_FIELDS))
            if marker is not None:
                return marker.to_object(self._rel(path + "/"))
        raise NotFoundError("stat", self.service_name, path)

    def _delete(self, path: str) -> None:
        run(changes.delete(self._keys, path), self._link)
        self._sweep_now_and_then()

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        dir_mode = list_mode != "prefix"
        prefix = path if not dir_mode or path.endswith("/") else path + "/"
        keys = self._keys
        # Entries of objects that expired would show their directories; drop them first
        # (a read only, where nothing in the namespace expires).
        if self._link.call("ZCARD", keys.expiring):
            Scripts.prune(self._link, [keys.index, keys.expiring], [keys.manifest_prefix])
        return list_index(
            self._link, self._keys, encode_path(prefix), dir_mode=dir_mode, shown=self._rel
        )

    # -- Copier, Mover, Direr ------------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        self._copy_or_move("copy", src, dst)

    def _move(self, src: str, dst: str) -> None:
        self._copy_or_move("move", src, dst)

    def _copy_or_move(self, op: str, src: str, dst: str) -> None:
        run(changes.copy_or_move(self._keys, op, src, dst, self._new_etag()), self._link)
        self._sweep_now_and_then()

    def _create_dir(self, path: str) -> Object:
        return run(changes.create_dir(self._keys, path, self._rel, self._new_etag()), self._link)

    # -- the sweep -----------------------------------------------------------------------

    def sweep(self, *, grace: float | None = None) -> SweepReport:
        """Delete the chunks no object uses any more, and those of writers that died.

        Args:
            grace: Only generations released (or writes last heard from) at least this
                many seconds ago; the store's ``sweep_grace`` when None. A grace shorter
                than the longest pause of a live writer breaks that write (it fails
                cleanly, with ServiceInternalError).

        Returns:
            How many generations and chunk keys were removed.
        """
        if grace is not None and (type(grace) is bool or not isinstance(grace, int | float)):
            raise PairInvalidError("sweep", self.service_name, "", "grace must be a number")
        try:
            return self._sweeper.sweep(self._grace if grace is None else float(grace))
        except Exception as exc:
            raise self._map_error(exc, "sweep", "") from exc

    def _sweep_now_and_then(self) -> None:
        """Run one short round of the sweep, at most every ``_SWEEP_INTERVAL`` seconds.

        Called after each commit, so a store that writes keeps its namespace swept
        without a thread of its own; threads racing here may both sweep, which is
        harmless.
        """
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_INTERVAL
        try:
            self._sweeper.sweep(self._grace, rounds=1)
        except Exception as exc:  # the next commit tries again
            logger.debug("sweep after commit failed: %r", exc)

    # -- async ---------------------------------------------------------------------------

    def _native_async(self) -> NativeAsync | None:
        """Return the async twin on redis-py's asyncio client (see ``_async``)."""
        from storager.services.redis._async import RedisAsync

        return RedisAsync(self, self._options)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_redis_error(exc, op, self.service_name, path)


def _clamp(total: int, offset: int | None, size: int | None) -> tuple[int, int]:
    """Return the start and length of the range ``offset``/``size`` within ``total``."""
    start = min(offset or 0, total)
    length = total - start if size is None else min(size, total - start)
    return start, length


def _sizes(chunk_size: int | None, inline_limit: int | None) -> tuple[int, int]:
    """Check chunk_size and inline_limit; return them with their defaults."""
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if not _CHUNK_SIZE_MIN <= chunk <= _CHUNK_SIZE_MAX:
        raise OptionError("pair 'chunk_size' must be 1 KiB to 64 MiB")
    inline = min(DEFAULT_INLINE_LIMIT, chunk) if inline_limit is None else inline_limit
    if inline > chunk:
        raise OptionError("pair 'inline_limit' must not exceed chunk_size")
    return chunk, inline
