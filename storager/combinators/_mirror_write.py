"""Running one change on every target of a Mirror: fan-out of streams, and rollback.

:class:`MirrorBase` holds what the Mirror and its capability mixins share: choosing
the targets of a call, running a function on each (one after another or at once),
feeding one stream to all of them while reading it once, and putting back what a
failed change wrote on the targets where it succeeded.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from functools import partial
from typing import IO, Any, TypeVar

from storager._errors import NotFoundError
from storager._protocols import Storager, WriteData
from storager._streams import iter_chunks
from storager.combinators._base import Wrapper, call_child
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
from storager.combinators._path_locks import PathLocks
from storager.combinators._pool import SlotPool, result_or_error
from storager.combinators._trace import span, tracing

__all__ = ["MirrorBase", "Names", "Outcome", "Touched"]

T = TypeVar("T")


@dataclass(slots=True)
class Saved:
    """What a path held on a target before a change: its bytes and its metadata."""

    spool: IO[bytes]
    content_type: str | None
    user_metadata: Mapping[str, str]


#: Per target, per path: what it held (None: nothing).
Spools = dict[str, dict[str, Saved | None]]

_FEED_POLL = 0.05
_END = object()


class MirrorBase(Wrapper):
    """The targets of a Mirror and the machinery that runs a call on them."""

    combinator = "mirror"
    _targets: dict[str, Storager]
    _order: Names
    _write_mode: str
    _read_mode: str
    _rollback: str
    _spool_memory: int
    _queue_chunks: int
    _pool: SlotPool
    _locks: PathLocks

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
        return span(self.describe_label(), op, path) if tracing() else contextlib.nullcontext()

    def _on(self, name: str, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        return call_child(self._targets[name], op, path, fn)

    def _parallel(self, names: Names, task: Callable[[str], T]) -> Outcome:
        if len(names) == 1:
            try:
                return {names[0]: (task(names[0]), None)}
            except Exception as exc:
                return {names[0]: (None, exc)}
        futures = self._pool.submit_all([partial(task, n) for n in names])
        wait(futures)
        return {n: result_or_error(f) for n, f in zip(names, futures, strict=True)}

    def _each(self, names: Names, how: str, task: Callable[[str], T], *, stop: bool) -> Outcome:
        """Run ``task`` per name, at once or in order (stopping at a failure if ``stop``)."""
        if how == "parallel":
            return self._parallel(names, task)
        outcome: Outcome = {}
        for name in names:
            try:
                outcome[name] = (task(name), None)
            except Exception as exc:
                outcome[name] = (None, exc)
                if stop:
                    break
        return outcome

    def _run_all(
        self, op: str, path: str, names: Names, how: str, fn: Callable[[Storager], T]
    ) -> T:
        """Run ``fn`` on every target, none skipped; raise a MirrorError if any failed."""
        with self._locks.hold([path]):
            outcome = self._each(names, how, lambda n: self._on(n, op, path, fn), stop=False)
        error = outcome_error(op, path, names, outcome)
        if error is not None:
            raise error
        return outcome[names[0]][0]  # type: ignore[no-any-return]

    # -- changes that roll back ---------------------------------------------------------

    def _mutate(
        self,
        op: str,
        path: str,
        touched: Touched,
        names: Names,
        how: str,
        fn: Callable[[str, Storager], T],
        on_failure: Callable[[Outcome], None] | None = None,
    ) -> T:
        """Run a change on ``names``; on failure roll back the targets it succeeded on.

        ``touched`` are the paths the change may alter: each is saved first (with
        ``rollback="restore"``) and put back, or deleted, on the targets that succeeded
        when another failed. ``on_failure`` runs after the rollback, given the outcome.
        Changes of the same paths through this Mirror run one at a time, so a
        rollback never undoes another caller's acknowledged change.
        """
        snapshots: Spools = {}

        def attempt(name: str) -> T:
            snapshots[name] = self._snapshot(name, _paths(touched, name))
            return self._on(name, op, path, lambda s: fn(name, s))

        with self._locks.hold([path, *_all_paths(touched)]):
            try:
                outcome = self._each(names, how, attempt, stop=True)
                errors = {n: e for n, (_, e) in outcome.items() if e is not None}
                if not errors:
                    return outcome[names[0]][0]  # type: ignore[no-any-return]
                words = self._roll_back(outcome, snapshots, touched)
                if on_failure is not None:
                    on_failure(outcome)
                words.update({n: "not attempted" for n in names if n not in outcome})
                raise mirror_error(
                    op,
                    path,
                    {n: words[n] for n in names},
                    errors,
                    blame=[path, *_all_paths(touched)],
                )
            finally:
                _close_spools(snapshots)

    def _snapshot(self, name: str, paths: Names) -> dict[str, Saved | None]:
        """Save what ``paths`` hold on target ``name`` (None: nothing there)."""
        if self._rollback != "restore":
            return {}
        target = self._targets[name]
        saved: dict[str, Saved | None] = {}
        for p in paths:
            try:
                obj = target.stat(p)
                if obj.is_dir:
                    continue
                spool = tempfile.SpooledTemporaryFile(max_size=self._spool_memory)  # noqa: SIM115
                try:
                    with target.open_reader(p) as reader:
                        shutil.copyfileobj(reader, spool, 1 << 20)
                except BaseException:
                    spool.close()
                    raise
            except NotFoundError:
                saved[p] = None
                continue
            spool.seek(0)
            saved[p] = Saved(spool, obj.content_type, obj.user_metadata)
        return saved

    def _roll_back(
        self,
        outcome: Mapping[str, tuple[Any, BaseException | None]],
        snapshots: Mapping[str, Mapping[str, Saved | None]],
        touched: Touched,
    ) -> dict[str, str]:
        words, undo = rollback_plan(outcome, touched, self._rollback)
        for name in undo:
            target = self._targets[name]
            try:
                for p in _paths(touched, name):
                    saved = snapshots.get(name, {}).get(p) if self._rollback == "restore" else None
                    if saved is None:
                        target.delete(p)
                    else:
                        _restore(target, p, saved)
                words[name] = "ok (rolled back)"
            except Exception as exc:
                words[name] = f"ok (rollback failed: {describe_error(exc)})"
        return words

    # -- one stream to every target -----------------------------------------------------

    def _fan_out(
        self,
        op: str,
        path: str,
        data: WriteData,
        names: Names,
        pairs: dict[str, Any],
        run: Callable[[str, Storager, Iterator[bytes]], T],
        touched: Names,
    ) -> dict[str, T]:
        """Give one stream to every target, reading the source once, in bounded memory.

        Each target runs ``run(name, store, chunks)`` on a thread of the pool with its
        own bounded queue of chunks. At the first failure (a target's or the source's)
        the other feeds are aborted, and ``touched`` is rolled back where it changed.

        Returns:
            Each target's result, by name.
        """
        with self._locks.hold(touched):
            return self._fan_out_locked(op, path, data, names, pairs, run, touched)

    def _fan_out_locked(
        self,
        op: str,
        path: str,
        data: WriteData,
        names: Names,
        pairs: dict[str, Any],
        run: Callable[[str, Storager, Iterator[bytes]], T],
        touched: Names,
    ) -> dict[str, T]:
        callback = take_callback(op, path, pairs)
        source = iter_chunks(op, "mirror", path, data, size=pairs.get("size"), io_callback=callback)
        queues = {n: queue.Queue[Any](maxsize=self._queue_chunks) for n in names}
        snapshots: Spools = {}

        def feed(name: str) -> Iterator[bytes]:
            q = queues[name]
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        def consume(name: str) -> T:
            snapshots[name] = self._snapshot(name, touched)
            return self._on(name, op, path, lambda s: run(name, s, feed(name)))

        futures = dict(
            zip(names, self._pool.submit_all([partial(consume, n) for n in names]), strict=True)
        )
        live = set(names)

        def put(item: object) -> None:
            for name in names:
                while name in live:
                    try:
                        queues[name].put(item, timeout=_FEED_POLL)
                        break
                    except queue.Full:
                        if futures[name].done():
                            live.discard(name)

        source_error: BaseException | None = None
        try:
            try:
                for chunk in source:
                    put(chunk)
                    finished = [n for n in live if futures[n].done()]
                    if any(futures[n].exception() is not None for n in finished):
                        break  # stop at the first failure: the others are aborted below
                    live.difference_update(finished)
                else:
                    put(_END)
            except Exception as exc:
                source_error = exc
            if source_error is not None or any(
                f.done() and f.exception() is not None for f in futures.values()
            ):
                put(FeedAborted(op, "mirror", path))
            wait(list(futures.values()))
            outcome = {n: result_or_error(futures[n]) for n in names}
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if source_error is None and not errors:
                return {n: result for n, (result, _) in outcome.items()}
            words = self._roll_back(outcome, snapshots, touched)
            if source_error is not None:
                raise source_error
            primary = {n: e for n, e in errors.items() if not isinstance(e, FeedAborted)}
            raise mirror_error(op, path, {n: words[n] for n in names}, primary or errors)
        finally:
            _close_spools(snapshots)


_paths = paths_of
_all_paths = all_paths


def _restore(target: Storager, path: str, saved: Saved) -> None:
    """Put back the saved bytes, with the metadata the target accepts on a write."""
    accepted = target.metadata().capability.operations.get("write", frozenset())
    pairs = restore_pairs(accepted, saved.content_type, saved.user_metadata)
    saved.spool.seek(0)
    target.write(path, saved.spool, **pairs)


def _close_spools(snapshots: Spools) -> None:
    for snaps in snapshots.values():
        for saved in snaps.values():
            if saved is not None:
                saved.spool.close()
