"""AsyncMirror: the native async twin of :class:`~storager.combinators.Mirror`.

Same arguments, modes, pairs (``targets=``, ``how=``), errors (``MirrorError`` naming
each target's outcome), rollback, multipart encoding and per-path serialisation of
changes as the sync Mirror, all decided by the same policy
(``storager.combinators._mirror_policy``). The targets are async stores, run as tasks
on the caller's loop: no thread pool. A race read cancels the slower targets once one
answers (the sync Mirror lets them finish); a cancelled change is rolled back where it
landed (see ``_mirror_write``).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from storager.aio._native import async_chunks
from storager.aio.combinators._base import _END, _common, _prime
from storager.aio.combinators._mirror_multipart import AsyncMirrorSegmenter
from storager.aio.combinators._mirror_write import AsyncMirrorBase, Closing, aclose_iterator
from storager.aio.combinators._path_locks import AsyncPathLocks
from storager.combinators._base import check_names, served_by
from storager.combinators._mirror_errors import (
    READ_MODES,
    ROLLBACK_MODES,
    WRITE_MODES,
    ReadMode,
    RollbackMode,
    WriteMode,
    check_mode,
    take_callback,
)
from storager.combinators._mirror_policy import Names, fetch_error

__all__ = ["AsyncMirror"]

T = TypeVar("T")

#: As the sync Mirror: never a Presigner (a signed URL reaches one target only).
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})


class AsyncMirror(AsyncMirrorBase):
    """One logical async store over named async targets that hold the same objects.

    Args:
        targets: The targets by name; their order is the standard order.
        write: ``"sequential"`` or ``"parallel"``, as the sync Mirror.
        read: ``"first"`` or ``"race"``, as the sync Mirror.
        rollback: ``"restore"``, ``"delete"`` or ``"none"``, as the sync Mirror.
        spool_memory: Bytes of a previous version kept in memory before spilling.
        queue_chunks: Chunks buffered per target while a stream fans out.

    Raises:
        InvalidArgumentError: No targets, a target that is not an AsyncStorager, an
            unknown mode or target name.
    """

    def __init__(
        self,
        targets: Mapping[str, AsyncStorager],
        *,
        write: WriteMode = "sequential",
        read: ReadMode = "first",
        rollback: RollbackMode = "restore",
        spool_memory: int = 8 << 20,
        queue_chunks: int = 4,
    ) -> None:
        if not isinstance(targets, Mapping) or not targets:
            raise InvalidArgumentError("new", "mirror", "", "targets must be a non-empty mapping")
        for name, target in targets.items():
            if not isinstance(name, str) or not isinstance(target, AsyncStorager):
                raise InvalidArgumentError(
                    "new", "mirror", "", f"target {name!r} must be an AsyncStorager named by a str"
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
        self._locks = AsyncPathLocks()

    @classmethod
    def _allowed_capabilities(cls, targets: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(targets, Mapping) or not targets:
            return frozenset()
        return _common(list(targets.values())) & _SUPPORTED

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
        """Answer a read-like call from the first target in order, or from a race."""
        errors: dict[str, BaseException] = {}
        if how == "first" or len(names) == 1:
            for name in names:
                try:
                    result = await fn(self._targets[name])
                except Exception as exc:
                    errors[name] = exc
                    continue
                served_by.set(name)
                return result
            raise fetch_error(op, path, names, errors)
        tasks = {asyncio.ensure_future(fn(self._targets[n])): n for n in names}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: names.index(tasks[t])):
                    err = task.exception()
                    if err is None:
                        result = task.result()
                        others = [t for t in done if t is not task]
                        try:
                            await _settle_losers(others, pending, discard)
                        except BaseException:  # cancelled while the losers stop
                            if discard is not None:
                                with contextlib.suppress(Exception):
                                    await discard(result)
                            raise
                        served_by.set(tasks[task])
                        return result
                    errors[tasks[task]] = err
            raise fetch_error(op, path, names, errors)
        finally:
            if pending:  # cancelled while racing: the losers go too
                await _settle_losers([], pending, discard)

    async def read(self, path: str, **pairs: Any) -> bytes:
        names, how = self._select("read", path, pairs, READ_MODES)
        # Several targets may start reading: report the bytes of the answer only.
        callback = take_callback("read", path, pairs)
        data = await self._fetch("read", path, names, how, lambda s: s.read(path, **pairs))
        if callback is not None:
            callback(len(data))
        return data

    async def open_reader(self, path: str, **pairs: Any) -> AsyncReader:
        names, how = self._select("open_reader", path, pairs, READ_MODES)
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
        return await self._fetch("stat", path, names, how, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> AsyncIterator[Object]:
        return self._list(path, pairs)

    async def _list(self, path: str, pairs: dict[str, Any]) -> AsyncIterator[Object]:
        names, how = self._select("list", path, pairs, READ_MODES)
        first, rest = await self._fetch(
            "list",
            path,
            names,
            how,
            lambda s: _prime(s.list(path, **pairs)),
            discard=lambda primed: aclose_iterator(primed[1]),
        )
        async with contextlib.aclosing(Closing(rest)):
            if first is _END:
                return
            yield cast(Object, first)
            async for obj in rest:
                yield obj

    # -- changes ------------------------------------------------------------------------

    async def delete(self, path: str, **pairs: Any) -> None:
        names, how = self._select("delete", path, pairs, WRITE_MODES)
        await self._run_all("delete", path, names, how, lambda s: s.delete(path, **pairs))

    async def write(self, path: str, data: AsyncWriteData, **pairs: Any) -> Object:
        names, how = self._select("write", path, pairs, WRITE_MODES)
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
            lambda _, s, chunks: s.write(path, chunks, **pairs),
            [path],
        )
        return results[names[0]]


async def _settle_losers(
    done: Sequence[asyncio.Future[Any]],
    pending: set[Any],
    discard: Callable[[Any], Awaitable[None]] | None,
) -> None:
    """Cancel the racers still running; release what any loser opened (a reader).

    A loser leaves ``pending`` as it is released, so a second call after a
    cancellation releases only the ones the first did not reach.
    """
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    losers: list[asyncio.Future[Any]] = [*done, *pending]
    for task in losers:
        pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            continue
        if discard is not None:
            with contextlib.suppress(Exception):
                await discard(task.result())


# -- capability mixins ----------------------------------------------------------------------


class _AsyncMirrorCopier(AsyncMirror, AsyncCopier):
    async def copy(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("copy", src, pairs, WRITE_MODES)
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
