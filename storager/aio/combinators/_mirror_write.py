"""Running one change on every target of a Mirror: fan-out of streams, and rollback.

Written once: ``storager/aio/combinators/_mirror_write.py`` is the source of both
forms, and ``python -m codegen`` derives ``storager/combinators/_mirror_write.py`` from
it. :class:`AsyncMirrorBase` holds what the Mirror and its capability mixins share:
choosing the targets of a call, running a function on each (one after another or at
once), feeding one stream to all of them while reading it once, and putting back what
a failed change wrote on the targets where it succeeded. The decisions (which targets,
which mode, what a failure says, which targets roll back) are ``_mirror_policy``'s;
how targets run at once is the crew's (``_mirror_crew``): tasks on the caller's loop
in async code, the Mirror's thread pool in sync code.

A change interrupted while it runs (async: its task cancelled, at the deadline of a
Timeout above or by the caller; sync: a ``KeyboardInterrupt``) is rolled back on the
targets where it had landed, then the interruption goes on, so it leaves no target with the change
(a threaded target may finish a write it had already handed to its thread: as
everywhere, that is the limit of a thread).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from storager._async_protocols import AsyncStorager
from storager._async_types import AsyncWriteData
from storager._errors import NotFoundError
from storager.aio.combinators._base import AsyncWrapper, call_child
from storager.aio.combinators._mirror_crew import (
    AsyncCrew,
    Interrupted,
    async_chunks,
    recorded,
    settled,
)
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
    Saved,
    Spools,
    Touched,
    all_paths,
    close_spools,
    outcome_error,
    paths_of,
    restore_pairs,
    rollback_plan,
    select_targets,
)
from storager.combinators._trace import NO_SPAN, span, tracing

__all__ = ["AsyncMirrorBase", "Names", "Outcome", "Touched"]

T = TypeVar("T")


class AsyncMirrorBase(AsyncWrapper):
    """The targets of a Mirror and the machinery that runs a call on them."""

    combinator = "mirror"
    _targets: dict[str, AsyncStorager]
    _order: Names
    _write_mode: str
    _read_mode: str
    _rollback: str
    _spool_memory: int
    _queue_chunks: int
    _pool: AsyncCrew
    _locks: AsyncPathLocks

    def describe_label(self) -> str:
        return f"mirror write={self._write_mode} read={self._read_mode}"

    def _select(
        self, op: str, path: str, pairs: dict[str, Any], modes: Sequence[str]
    ) -> tuple[Names, str]:
        """Take ``targets=`` and ``how=`` out of ``pairs``; return the names and the mode."""
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

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span(self.describe_label(), op, path) if tracing() else NO_SPAN

    async def _on(
        self, name: str, op: str, path: str, fn: Callable[[AsyncStorager], Awaitable[T]]
    ) -> T:
        return await call_child(self._targets[name], op, path, fn)

    async def _each(
        self,
        names: Names,
        how: str,
        task: Callable[[str], Awaitable[T]],
        *,
        stop: bool,
        outcome: Outcome | None = None,
        settle: bool = False,
    ) -> Outcome:
        """Run ``task`` per name, at once or in order (stopping at a failure if ``stop``).

        ``outcome``, when given, is filled as targets finish, so a caller interrupted
        midway still knows which targets the change reached; ``settle`` (a change that
        rolls back) waits, when interrupted, until every target has stopped.
        """
        done: Outcome = {} if outcome is None else outcome

        async def one(name: str) -> None:
            try:
                done[name] = (await task(name), None)
            except Exception as exc:
                done[name] = (None, exc)
            except BaseException as exc:
                if not recorded(exc):
                    raise
                done[name] = (None, exc)

        if how == "parallel" and len(names) > 1:
            await self._pool.each(names, one, settle=settle)
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
            outcome = await self._each(names, how, lambda n: self._on(n, op, path, fn), stop=False)
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

        ``touched`` are the paths the change may alter: each is saved first (with
        ``rollback="restore"``) and put back, or deleted, on the targets that succeeded
        when another failed. ``on_failure`` runs after the rollback, given the outcome.
        Changes of the same paths through this Mirror run one at a time, so a
        rollback never undoes another caller's acknowledged change. An interrupted
        change is rolled back where it landed before the interruption goes on.
        """
        snapshots: Spools = {}
        outcome: Outcome = {}

        async def attempt(name: str) -> T:
            snapshots[name] = await self._snapshot(name, paths_of(touched, name))
            return await self._on(name, op, path, lambda s: fn(name, s))

        async with self._locks.hold([path, *all_paths(touched)]):
            try:
                try:
                    outcome = await self._each(
                        names, how, attempt, stop=True, outcome=outcome, settle=True
                    )
                except Interrupted as interruption:
                    if settled(interruption):
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
                close_spools(snapshots)

    async def _snapshot(self, name: str, paths: Names) -> dict[str, Saved | None]:
        """Save what ``paths`` hold on target ``name`` (None: nothing there).

        The bytes go to a temporary file that spills to disk past ``spool_memory``.
        """
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
                        await _restore(target, p, saved)
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

        Each target runs ``run(name, store, feed)`` at once (a task, or a thread of the
        pool) with its own bounded queue of chunks. At the first failure (a target's or
        the source's) the other feeds are aborted, and ``touched`` is rolled back where
        it changed.

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
        snapshots: Spools = {}

        async def consume(name: str, feed: AsyncIterator[bytes]) -> T:
            snapshots[name] = await self._snapshot(name, touched)
            return await self._on(name, op, path, lambda s: run(name, s, feed))

        fan = self._pool.fan_out(names, self._queue_chunks, consume)
        source_error: BaseException | None = None
        try:
            try:
                async for chunk in source:
                    await fan.put(chunk)
                    if fan.failed():
                        break  # stop at the first failure: the others are aborted below
                else:
                    await fan.finish()
            except Exception as exc:
                source_error = exc
            if source_error is not None or fan.failed():
                await fan.abort(FeedAborted(op, "mirror", path))
            outcome = await fan.outcome()
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if source_error is None and not errors:
                return {n: result for n, (result, _) in outcome.items()}
            words = await self._roll_back(outcome, snapshots, touched)
            if source_error is not None:
                raise source_error
            primary = {n: e for n, e in errors.items() if not isinstance(e, FeedAborted)}
            raise mirror_error(op, path, {n: words[n] for n in names}, primary or errors)
        except Interrupted:
            landed = await fan.stop(FeedAborted(op, "mirror", path))
            await self._roll_back(landed, snapshots, touched)
            raise
        finally:
            with contextlib.suppress(Exception):
                await cast(Any, source).aclose()
            close_spools(snapshots)


async def _restore(target: AsyncStorager, path: str, saved: Saved) -> None:
    """Put back the saved bytes, with the metadata the target accepts on a write."""
    accepted = target.metadata().capability.operations.get("write", frozenset())
    pairs = restore_pairs(accepted, saved.content_type, saved.user_metadata)
    saved.spool.seek(0)
    await target.write(path, saved.spool, **pairs)


def _landed(outcome: Outcome) -> Outcome:
    """The targets a change reached before it was interrupted."""
    return {n: r for n, r in outcome.items() if r[1] is None}
