"""Running one change on every target of an AsyncMirror: fan-out of streams, and rollback.

The async twin of ``storager.combinators._mirror_write``: the decisions (which targets,
which mode, what a failure says, which targets roll back) are the sync Mirror's, from
``storager.combinators._mirror_policy``; here they are awaited. Targets run at once as
tasks on the caller's loop, not on a thread pool.

Cancellation (an ``AsyncTimeout`` above, a cancelled task): a change cancelled while it
runs is rolled back on the targets where it had landed, then the cancellation goes on,
so a cancelled mirrored write leaves no target with it (a threaded target may finish a
write it had already handed to its thread: as everywhere, that is the view's limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import NotFoundError
from storager.aio._native import async_chunks
from storager.aio.combinators._base import AsyncWrapper
from storager.aio.combinators._path_locks import AsyncPathLocks
from storager.combinators._mirror_errors import (
    FeedAborted,
    describe_error,
    mirror_error,
    take_callback,
)
from storager.combinators._mirror_policy import (
    Names,
    Outcome,
    Touched,
    all_paths,
    outcome_error,
    paths_of,
    restore_pairs,
    rollback_plan,
    select_targets,
)
from storager.combinators._mirror_write import Saved

__all__ = ["AsyncMirrorBase", "Closing", "aclose_iterator"]

T = TypeVar("T")
#: Per target, per path: what it held (None: nothing).
Spools = dict[str, dict[str, Saved | None]]

_END = object()


class AsyncMirrorBase(AsyncWrapper):
    """The targets of an AsyncMirror and the machinery that runs a call on them."""

    combinator = "mirror"
    _targets: dict[str, AsyncStorager]
    _order: Names
    _write_mode: str
    _read_mode: str
    _rollback: str
    _spool_memory: int
    _queue_chunks: int
    _locks: AsyncPathLocks

    def describe_label(self) -> str:
        return f"mirror write={self._write_mode} read={self._read_mode}"

    def _select(
        self, op: str, path: str, pairs: dict[str, Any], modes: Sequence[str]
    ) -> tuple[Names, str]:
        return select_targets(
            op,
            path,
            pairs,
            modes,
            order=self._order,
            known=self._targets,
            write_mode=self._write_mode,
            read_mode=self._read_mode,
        )

    async def _each(
        self,
        names: Names,
        how: str,
        task: Callable[[str], Awaitable[T]],
        *,
        stop: bool,
        outcome: Outcome | None = None,
    ) -> Outcome:
        """Run ``task`` per name, at once or in order (stopping at a failure if ``stop``).

        ``outcome``, when given, is filled as targets finish, so a caller cancelled
        midway still knows which targets the change reached.
        """
        done: Outcome = {} if outcome is None else outcome

        async def one(name: str) -> None:
            try:
                done[name] = (await task(name), None)
            except Exception as exc:
                done[name] = (None, exc)

        if how == "parallel" and len(names) > 1:
            await asyncio.gather(*(one(n) for n in names))
        else:
            for name in names:
                await one(name)
                if stop and done[name][1] is not None:
                    break
        return {n: done[n] for n in names if n in done}

    async def _run_all(
        self,
        op: str,
        path: str,
        names: Names,
        how: str,
        fn: Callable[[AsyncStorager], Awaitable[T]],
    ) -> T:
        """Run ``fn`` on every target, none skipped; raise a MirrorError if any failed."""
        async with self._locks.hold([path]):
            outcome = await self._each(names, how, lambda n: fn(self._targets[n]), stop=False)
        error = outcome_error(op, path, names, outcome)
        if error is not None:
            raise error
        return cast(T, outcome[names[0]][0])

    # -- changes that roll back ---------------------------------------------------------

    async def _mutate(
        self,
        op: str,
        path: str,
        touched: Touched,
        names: Names,
        how: str,
        fn: Callable[[str, AsyncStorager], Awaitable[T]],
        on_failure: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> T:
        """Run a change on ``names``; on failure roll back the targets it succeeded on.

        The sync ``MirrorBase._mutate``'s rules, awaited; and a cancelled change is
        rolled back where it landed before the cancellation goes on.
        """
        snapshots: Spools = {}
        outcome: Outcome = {}

        async def attempt(name: str) -> T:
            snapshots[name] = await self._snapshot(name, paths_of(touched, name))
            return await fn(name, self._targets[name])

        async with self._locks.hold([path, *all_paths(touched)]):
            try:
                try:
                    outcome = await self._each(names, how, attempt, stop=True, outcome=outcome)
                except asyncio.CancelledError:
                    await self._roll_back(_landed(outcome), snapshots, touched)
                    raise
                errors = {n: e for n, (_, e) in outcome.items() if e is not None}
                if not errors:
                    return cast(T, outcome[names[0]][0])
                words = await self._roll_back(outcome, snapshots, touched)
                if on_failure is not None:
                    await on_failure(outcome)
                words.update({n: "not attempted" for n in names if n not in outcome})
                raise mirror_error(
                    op,
                    path,
                    {n: words[n] for n in names},
                    errors,
                    blame=[path, *all_paths(touched)],
                )
            finally:
                _close_spools(snapshots)

    async def _snapshot(self, name: str, paths: Names) -> dict[str, Saved | None]:
        """Save what ``paths`` hold on target ``name`` (None: nothing there)."""
        if self._rollback != "restore":
            return {}
        target = self._targets[name]
        saved: dict[str, Saved | None] = {}
        for p in paths:
            try:
                obj = await target.stat(p)
                if obj.is_dir:
                    continue
                spool = tempfile.SpooledTemporaryFile(max_size=self._spool_memory)  # noqa: SIM115
                try:
                    async with await target.open_reader(p) as reader:
                        while chunk := await reader.read(1 << 20):
                            spool.write(chunk)
                except BaseException:
                    spool.close()
                    raise
            except NotFoundError:
                saved[p] = None
                continue
            spool.seek(0)
            saved[p] = Saved(spool, obj.content_type, obj.user_metadata)
        return saved

    async def _roll_back(
        self,
        outcome: Mapping[str, tuple[Any, BaseException | None]],
        snapshots: Mapping[str, Mapping[str, Saved | None]],
        touched: Touched,
    ) -> dict[str, str]:
        words, undo = rollback_plan(outcome, touched, self._rollback)
        for name in undo:
            target = self._targets[name]
            try:
                for p in paths_of(touched, name):
                    saved = snapshots.get(name, {}).get(p) if self._rollback == "restore" else None
                    if saved is None:
                        await target.delete(p)
                    else:
                        accepted = target.metadata().capability.operations.get("write", ())
                        saved.spool.seek(0)
                        await target.write(
                            p,
                            saved.spool,
                            **restore_pairs(accepted, saved.content_type, saved.user_metadata),
                        )
                words[name] = "ok (rolled back)"
            except Exception as exc:
                words[name] = f"ok (rollback failed: {describe_error(exc)})"
        return words

    # -- one stream to every target -----------------------------------------------------

    async def _fan_out(
        self,
        op: str,
        path: str,
        data: AsyncWriteData,
        names: Names,
        pairs: dict[str, Any],
        run: Callable[[str, AsyncStorager, AsyncIterator[bytes]], Awaitable[T]],
        touched: Names,
    ) -> dict[str, T]:
        """Give one stream to every target, reading the source once, in bounded memory.

        Each target runs ``run(name, store, chunks)`` as a task with its own bounded
        queue of chunks. At the first failure (a target's or the source's) the other
        feeds are aborted, and ``touched`` is rolled back where it changed.

        Returns:
            Each target's result, by name.
        """
        async with self._locks.hold(touched):
            return await self._fan_out_locked(op, path, data, names, pairs, run, touched)

    async def _fan_out_locked(
        self,
        op: str,
        path: str,
        data: AsyncWriteData,
        names: Names,
        pairs: dict[str, Any],
        run: Callable[[str, AsyncStorager, AsyncIterator[bytes]], Awaitable[T]],
        touched: Names,
    ) -> dict[str, T]:
        callback = take_callback(op, path, pairs)
        source = async_chunks(
            op, "mirror", path, data, size=pairs.get("size"), io_callback=callback
        )
        queues = {n: asyncio.Queue[Any](maxsize=self._queue_chunks) for n in names}
        snapshots: Spools = {}

        async def feed(name: str) -> AsyncIterator[bytes]:
            q = queues[name]
            while True:
                item = await q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        async def consume(name: str) -> T:
            snapshots[name] = await self._snapshot(name, touched)
            return await run(name, self._targets[name], feed(name))

        tasks = {n: asyncio.ensure_future(consume(n)) for n in names}
        live = set(names)

        async def put(item: object) -> None:
            for name in names:
                if name not in live:
                    continue
                q, task = queues[name], tasks[name]
                if task.done():
                    live.discard(name)
                elif not q.full():
                    q.put_nowait(item)
                else:
                    putter = asyncio.ensure_future(q.put(item))
                    try:
                        await asyncio.wait({putter, task}, return_when=asyncio.FIRST_COMPLETED)
                    finally:  # the consumer ended first, or the write was cancelled
                        if not putter.done():
                            putter.cancel()
                            live.discard(name)

        def failed() -> bool:
            return any(t.done() and _error(t) is not None for t in tasks.values())

        source_error: BaseException | None = None
        try:
            try:
                async for chunk in source:
                    await put(chunk)
                    if failed():
                        break  # stop at the first failure: the others are aborted below
                else:
                    await put(_END)
            except Exception as exc:
                source_error = exc
            if source_error is not None or failed():
                await put(FeedAborted(op, "mirror", path))
            await asyncio.wait(tasks.values())
            outcome: Outcome = {n: (_result(tasks[n]), _error(tasks[n])) for n in names}
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if source_error is None and not errors:
                return {n: result for n, (result, _) in outcome.items()}
            words = await self._roll_back(outcome, snapshots, touched)
            if source_error is not None:
                raise source_error
            primary = {n: e for n, e in errors.items() if not isinstance(e, FeedAborted)}
            raise mirror_error(op, path, {n: words[n] for n in names}, primary or errors)
        except asyncio.CancelledError:
            for task in tasks.values():
                task.cancel()
            await asyncio.wait(tasks.values())
            landed = {n: (_result(t), None) for n, t in tasks.items() if _error(t) is None}
            await self._roll_back(landed, snapshots, touched)
            raise
        finally:
            with contextlib.suppress(Exception):
                await cast(Any, source).aclose()
            _close_spools(snapshots)


def _error(task: asyncio.Future[Any]) -> BaseException | None:
    """The error a finished task ended with (a cancelled one: CancelledError)."""
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


def _result(task: asyncio.Future[Any]) -> Any:
    return None if _error(task) is not None else task.result()


def _landed(outcome: Outcome) -> Outcome:
    """The targets a change reached before it was cancelled."""
    return {n: r for n, r in outcome.items() if r[1] is None}


def _close_spools(snapshots: Spools) -> None:
    for snaps in snapshots.values():
        for saved in snaps.values():
            if saved is not None:
                saved.spool.close()


async def aclose_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async iterator that can be closed (an async generator)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class Closing:
    """What ``contextlib.aclosing`` needs around any async iterator: an ``aclose``."""

    def __init__(self, iterator: AsyncIterator[Any]) -> None:
        self._iterator = iterator

    async def aclose(self) -> None:
        await aclose_iterator(self._iterator)
