"""Mirror: one logical store over several named targets that hold the same objects.

Written once: ``storager/aio/combinators/_mirror.py`` is the source of both forms, and
``python -m codegen`` derives ``storager/combinators/_mirror.py`` from it (with
``_mirror_write`` and ``_mirror_multipart`` likewise). Writes go to every target, one
after another in the standard order (``sequential``) or all at once (``parallel``);
when a write fails on some targets, what it wrote on the others is rolled back. Reads
take the first target that answers, in order (``first``), or ask all at once and take
the first good answer (``race``).

Both forms decide alike (``storager/combinators/_mirror_policy.py``) and report alike
(``_mirror_errors.py``); what differs is how targets run at once, the crew of
``_mirror_crew``: the sync Mirror runs them on its own thread pool (``workers``), and a
race's losers run on, their readers closed when they answer; the async Mirror runs
them as tasks on the caller's loop and cancels a race's losers once one answers. A
change interrupted midway (async: cancelled; sync: a ``KeyboardInterrupt``) is rolled
back where it landed. The machinery of changes (fan-out, rollback) is in
``_mirror_write``, multipart uploads in ``_mirror_multipart``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import (
    AsyncAppender,
    AsyncCopier,
    AsyncDirer,
    AsyncLinker,
    AsyncMover,
    AsyncStorager,
)
from storager._async_types import AsyncReader, AsyncWriteData
from storager._errors import InvalidArgumentError
from storager._object import Object
from storager._protocols import Appender, Copier, Direr, Linker, Mover, Segmenter
from storager.aio.combinators._base import async_common_capabilities
from storager.aio.combinators._mirror_crew import (
    AsyncCrew,
    AsyncPrimed,
    async_chunks,
    async_drop_listing,
    async_listing,
    async_primed,
)
from storager.aio.combinators._mirror_multipart import AsyncMirrorSegmenter
from storager.aio.combinators._mirror_write import AsyncMirrorBase, Names
from storager.aio.combinators._path_locks import AsyncPathLocks
from storager.combinators._base import check_names, served_by
from storager.combinators._mirror_errors import (
    READ_MODES,
    ROLLBACK_MODES,
    WRITE_MODES,
    MirrorError,
    ReadMode,
    RollbackMode,
    WriteMode,
    check_mode,
    take_callback,
)
from storager.combinators._mirror_policy import fetch_error

__all__ = ["AsyncMirror", "MirrorError"]

T = TypeVar("T")

#: Presigner is left out on purpose: a URL reaches one target, so a PUT through it
#: would change one copy only, and the protocol cannot offer reads without writes.
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})


class AsyncMirror(AsyncMirrorBase):
    """One logical store over named targets.

    Args:
        targets: The targets by name; their order is the standard order.
        write: ``"sequential"`` (in the standard order, stopping at the first failure)
            or ``"parallel"`` (all at once).
        read: ``"first"`` (in order, falling through on a missing object or an
            error) or ``"race"`` (all at once; the first good answer wins).
        rollback: What a failed write does to the targets it succeeded on:
            ``"restore"`` puts back the previous version (read before the write into
            a temporary file that spills to disk past ``spool_memory`` bytes, so
            memory stays bounded, at the cost of one read per target per write) or
            deletes the new object if there was none; ``"delete"`` only deletes the
            new object (cheaper; a previous version is lost); ``"none"`` leaves it.
        workers: Threads in the sync Mirror's pool (at least one per target); the
            async Mirror runs its targets as tasks and needs none.
        spool_memory: Bytes of a previous version kept in memory before spilling.
        queue_chunks: Chunks buffered per target while a stream fans out.

    Every operation accepts the pairs of the targets, passed on to each, plus
    ``targets=[names]`` to narrow the call and ``how=`` to override the mode.

    The Mirror is a Copier, Mover, Segmenter, Appender, Direr and Linker when every
    target is; never a Presigner (a signed URL reaches one target only).

    Raises:
        InvalidArgumentError: No targets, a target that is not a store of the Mirror's
            kind, an unknown mode or target name.
    """

    def __init__(
        self,
        targets: Mapping[str, AsyncStorager],
        *,
        write: WriteMode = "sequential",
        read: ReadMode = "first",
        rollback: RollbackMode = "restore",
        workers: int | None = None,
        spool_memory: int = 8 << 20,
        queue_chunks: int = 4,
    ) -> None:
        if not isinstance(targets, Mapping) or not targets:
            raise InvalidArgumentError("new", "mirror", "", "targets must be a non-empty mapping")
        for name, target in targets.items():
            if not isinstance(name, str) or not isinstance(target, AsyncStorager):
                raise InvalidArgumentError(
                    "new",
                    "mirror",
                    "",
                    f"target {name!r} must be of type AsyncStorager, named by a str",
                )
        check_mode("new", "write", write, WRITE_MODES)
        check_mode("new", "read", read, READ_MODES)
        check_mode("new", "rollback", rollback, ROLLBACK_MODES)
        self._targets = dict(targets)
        self._order = list(targets)
        self._write_mode = write
        self._read_mode = read
        self._rollback = rollback
        self._spool_memory = spool_memory
        self._queue_chunks = max(1, queue_chunks)
        self._pool = AsyncCrew(max(len(targets), workers or 2 * len(targets)))
        self._locks = AsyncPathLocks()

    @classmethod
    def _allowed_capabilities(cls, targets: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(targets, Mapping) or not targets:
            return frozenset()
        return async_common_capabilities(targets.values()) & _SUPPORTED

    # -- configuration ------------------------------------------------------------------

    def children(self) -> Mapping[str, AsyncStorager]:
        return {name: self._targets[name] for name in self._order}

    @property
    def standard_order(self) -> Names:
        """The target names in the order sequential writes and first-reads use."""
        return list(self._order)

    def set_standard_order(self, order: Sequence[str]) -> None:
        """Make ``order`` the default order; targets it leaves out keep theirs, after it.

        Raises:
            InvalidArgumentError: An unknown or repeated name.
        """
        if isinstance(order, str):
            raise InvalidArgumentError("set_standard_order", "mirror", "", "order is a list")
        check_names("set_standard_order", "mirror", order, self._targets)
        if len(set(order)) != len(order):
            raise InvalidArgumentError("set_standard_order", "mirror", "", "repeated name")
        self._order = list(order) + [n for n in self._order if n not in order]

    def _close(self) -> None:
        self._pool.shutdown()

    # -- reads --------------------------------------------------------------------------

    async def _fetch(
        self,
        op: str,
        path: str,
        names: Names,
        how: str,
        fn: Callable[[AsyncStorager], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """Answer a read-like call from the first target in order, or from a race.

        ``discard`` releases what a race's loser returned (a reader, a listing).
        """
        errors: dict[str, BaseException] = {}
        if how == "first" or len(names) == 1:
            for name in names:
                try:
                    result = await self._on(name, op, path, fn)
                except Exception as exc:
                    errors[name] = exc
                    continue
                served_by.set(name)
                return result
            raise fetch_error(op, path, names, errors)
        won = await self._pool.race(names, lambda n: self._on(n, op, path, fn), discard, errors)
        if won is None:
            raise fetch_error(op, path, names, errors)
        served_by.set(won[0])
        return won[1]

    async def read(self, path: str, **pairs: Any) -> bytes:
        names, how = self._select("read", path, pairs, READ_MODES)
        # Several targets may start reading: report the bytes of the answer only.
        callback = take_callback("read", path, pairs)
        with self._traced("read", path):
            data = await self._fetch("read", path, names, how, lambda s: s.read(path, **pairs))
        if callback is not None:
            callback(len(data))
        return data

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        names, how = self._select("open_reader", path, pairs, READ_MODES)
        with self._traced("open_reader", path):
            return await self._fetch(
                "open_reader",
                path,
                names,
                how,
                lambda s: s.open_reader(path, **pairs),
                discard=lambda r: r.close(),
            )

    async def stat(self, path: str, **pairs: Any) -> Object:
        names, how = self._select("stat", path, pairs, READ_MODES)
        with self._traced("stat", path):
            return await self._fetch("stat", path, names, how, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        """List from the first target that answers, or from a race's winner.

        An unknown target or mode raises at the call; the targets are asked at the
        call in sync code, for the first item in async code.
        """
        names, how = self._select("list", path, pairs, READ_MODES)
        return async_listing(lambda: self._list(path, names, how, pairs))

    async def _list(
        self, path: str, names: Names, how: str, pairs: dict[str, Any]
    ) -> AsyncPrimed[Object]:
        with self._traced("list", path):
            return await self._fetch(
                "list",
                path,
                names,
                how,
                lambda s: async_primed(s.list(path, **pairs)),
                discard=async_drop_listing,
            )

    # -- changes ------------------------------------------------------------------------

    async def delete(self, path: str, **pairs: Any) -> None:
        names, how = self._select("delete", path, pairs, WRITE_MODES)
        with self._traced("delete", path):
            await self._run_all("delete", path, names, how, lambda s: s.delete(path, **pairs))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        names, how = self._select("write", path, pairs, WRITE_MODES)
        with self._traced("write", path):
            if isinstance(data, bytes | bytearray | memoryview):
                callback = take_callback("write", path, pairs)
                payload = data
                obj: Object = await self._mutate(
                    "write", path, [path], names, how, lambda _, s: s.write(path, payload, **pairs)
                )
                if callback is not None:
                    callback(len(data) if not isinstance(data, memoryview) else data.nbytes)
                return obj
            results = await self._fan_out(
                "write",
                path,
                data,
                names,
                pairs,
                lambda _, s, feed: s.write(path, feed, **pairs),
                [path],
            )
            return results[names[0]]


# -- capability mixins ----------------------------------------------------------------------


class _AsyncMirrorCopier(AsyncMirror, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("copy", src, pairs, WRITE_MODES)
        with self._traced("copy", src):
            await self._mutate(
                "copy",
                src,
                [dst],
                names,
                how,
                lambda _, s: cast(AsyncCopier, s).copy(src, dst, **pairs),
            )


class _AsyncMirrorMover(AsyncMirror, AsyncMover):
    async def move(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("move", src, pairs, WRITE_MODES)
        with self._traced("move", src):
            await self._mutate(
                "move",
                src,
                [src, dst],
                names,
                how,
                lambda _, s: cast(AsyncMover, s).move(src, dst, **pairs),
            )


class _AsyncMirrorAppender(AsyncMirror, AsyncAppender):
    async def append(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        names, how = self._select("append", path, pairs, WRITE_MODES)
        if not isinstance(data, bytes | bytearray | memoryview):
            # Every target appends the same bytes: read a stream once, in memory.
            size = pairs.pop("size", None)
            data = b"".join(
                [bytes(c) async for c in async_chunks("append", "mirror", path, data, size=size)]
            )
        payload = data
        with self._traced("append", path):
            return await self._mutate(
                "append",
                path,
                [path],
                names,
                how,
                lambda _, s: cast(AsyncAppender, s).append(path, payload, **pairs),
            )


class _AsyncMirrorDirer(AsyncMirror, AsyncDirer):
    async def create_dir(self, path: str, **pairs: Any) -> Object:
        names, how = self._select("create_dir", path, pairs, WRITE_MODES)
        with self._traced("create_dir", path):
            return await self._mutate(
                "create_dir",
                path,
                [],
                names,
                how,
                lambda _, s: cast(AsyncDirer, s).create_dir(path, **pairs),
            )


class _AsyncMirrorLinker(AsyncMirror, AsyncLinker):
    async def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        """Create the link on every target; where another fails, put ``path`` back."""
        names, how = self._select("create_link", path, pairs, WRITE_MODES)
        with self._traced("create_link", path):
            return await self._mutate(
                "create_link",
                path,
                [path],
                names,
                how,
                lambda _, s: cast(AsyncLinker, s).create_link(path, target, **pairs),
            )


AsyncMirror._capability_mixins = {
    Copier: _AsyncMirrorCopier,
    Mover: _AsyncMirrorMover,
    Segmenter: AsyncMirrorSegmenter,
    Appender: _AsyncMirrorAppender,
    Direr: _AsyncMirrorDirer,
    Linker: _AsyncMirrorLinker,
}
