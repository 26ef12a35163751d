"""Mirror: one logical store over several named targets that hold the same objects.

Writes go to every target, one after another in the standard order (``sequential``)
or all at once (``parallel``); when a write fails on some targets, what it wrote on the
others is rolled back. Reads take the first target that answers, in order (``first``),
or ask all at once and take the first good answer (``race``).
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import IO, Any, BinaryIO, TypeVar, cast

from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    PairInvalidError,
    StorageError,
)
from storager._object import Object
from storager._protocols import Appender, Copier, Direr, Mover, Storager, WriteData
from storager._streams import iter_chunks
from storager.combinators._base import (
    Wrapper,
    call_child,
    check_names,
    common_capabilities,
    prime,
    served_by,
)
from storager.combinators._pool import SlotPool, result_or_error
from storager.combinators._trace import span, tracing

__all__ = ["Mirror", "MirrorError"]

T = TypeVar("T")
Names = list[str]

WRITE_MODES = ("sequential", "parallel")
READ_MODES = ("first", "race")
ROLLBACK_MODES = ("restore", "delete", "none")
_SUPPORTED = frozenset({Copier, Mover, Appender, Direr})
_FEED_POLL = 0.05


class MirrorError(StorageError):
    """An operation failed on some of a Mirror's targets; the reason lists each outcome.

    A Mirror raises a subclass that also derives from the first target's error class
    (``MirrorError[ServiceInternalError]``...), so callers may catch either.

    Attributes:
        outcomes: Each target's outcome in words (``"ok (rolled back)"``...).
        errors: The exception each failed target raised.
    """

    default_reason = "mirror failed"

    def __init__(
        self,
        op: str,
        service: str = "mirror",
        path: str = "",
        reason: str = "",
        *,
        outcomes: Mapping[str, str] | None = None,
        errors: Mapping[str, BaseException] | None = None,
    ) -> None:
        self.outcomes = dict(outcomes or {})
        self.errors = dict(errors or {})
        if not reason and self.outcomes:
            reason = ", ".join(f"{name}: {what}" for name, what in self.outcomes.items())
        super().__init__(op, service, path, reason)
        if self.errors:
            self.retryable = any(getattr(e, "retryable", False) for e in self.errors.values())


_error_classes: dict[type, type[MirrorError]] = {}


def mirror_error(
    op: str, path: str, outcomes: Mapping[str, str], errors: Mapping[str, BaseException]
) -> MirrorError:
    """Build the MirrorError for ``errors``, also an instance of the first error's class."""
    first = next(iter(errors.values()))
    base = type(first)
    cls: type[MirrorError] = MirrorError
    if issubclass(base, StorageError) and not issubclass(base, MirrorError):
        cls = _error_classes.get(base) or type(
            f"MirrorError[{base.__name__}]", (MirrorError, base), {"__module__": __name__}
        )
        _error_classes[base] = cls
    err = cls(op, "mirror", path, outcomes=outcomes, errors=errors)
    err.__cause__ = first
    return err


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _FeedAborted(StorageError):
    default_reason = "cancelled: another target or the source failed"


_END = object()


class Mirror(Wrapper):
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
        workers: Threads in the Mirror's pool (at least one per target).
        spool_memory: Bytes of a previous version kept in memory before spilling.
        queue_chunks: Chunks buffered per target while a stream fans out.

    Every operation accepts the pairs of the targets, passed on to each, plus
    ``targets=[names]`` to narrow the call and ``how=`` to override the mode.

    Raises:
        InvalidArgumentError: No targets, a target that is not a Storager, an
            unknown mode or target name.
    """

    combinator = "mirror"

    def __init__(
        self,
        targets: Mapping[str, Storager],
        *,
        write: str = "sequential",
        read: str = "first",
        rollback: str = "restore",
        workers: int | None = None,
        spool_memory: int = 8 << 20,
        queue_chunks: int = 4,
    ) -> None:
        if not isinstance(targets, Mapping) or not targets:
            raise InvalidArgumentError("new", "mirror", "", "targets must be a non-empty mapping")
        for name, target in targets.items():
            if not isinstance(name, str) or not isinstance(target, Storager):
                raise InvalidArgumentError(
                    "new", "mirror", "", f"target {name!r} must be a Storager named by a str"
                )
        _check_mode("new", "write", write, WRITE_MODES)
        _check_mode("new", "read", read, READ_MODES)
        _check_mode("new", "rollback", rollback, ROLLBACK_MODES)
        self._targets = dict(targets)
        self._order = list(targets)
        self._write_mode = write
        self._read_mode = read
        self._rollback = rollback
        self._spool_memory = spool_memory
        self._queue_chunks = max(1, queue_chunks)
        size = max(len(targets), workers or 2 * len(targets))
        self._pool = SlotPool(size, "storager-mirror")

    @classmethod
    def _allowed_capabilities(cls, targets: object = None, *a: Any, **k: Any) -> frozenset[type]:
        if not isinstance(targets, Mapping) or not targets:
            return frozenset()
        return common_capabilities(targets.values()) & _SUPPORTED

    # -- configuration ------------------------------------------------------------------

    def children(self) -> Mapping[str, Storager]:
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

    def describe_label(self) -> str:
        return f"mirror write={self._write_mode} read={self._read_mode}"

    def _close(self) -> None:
        self._pool.shutdown()

    def _select(
        self, op: str, path: str, pairs: dict[str, Any], modes: Sequence[str]
    ) -> tuple[Names, str]:
        names = pairs.pop("targets", None)
        how = pairs.pop("how", None)
        if names is None:
            chosen = list(self._order)
        else:
            if isinstance(names, str) or not isinstance(names, Sequence) or not names:
                raise InvalidArgumentError(op, "mirror", path, "targets must be a list of names")
            check_names(op, "mirror", names, self._targets)
            chosen = list(dict.fromkeys(names))
        if how is None:
            how = self._write_mode if modes is WRITE_MODES else self._read_mode
        else:
            _check_mode(op, "how", how, modes)
        return chosen, how

    # -- running on targets -------------------------------------------------------------

    def _on(self, name: str, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        return call_child(self._targets[name], op, path, fn)

    def _parallel(
        self, names: Names, task: Callable[[str], T]
    ) -> dict[str, tuple[Any, BaseException | None]]:
        if len(names) == 1:
            try:
                return {names[0]: (task(names[0]), None)}
            except Exception as exc:
                return {names[0]: (None, exc)}
        futures = self._pool.submit_all([partial(task, n) for n in names])
        wait(futures)
        return {n: result_or_error(f) for n, f in zip(names, futures, strict=True)}

    def _fetch(
        self,
        op: str,
        path: str,
        names: Names,
        how: str,
        fn: Callable[[Storager], T],
        discard: Callable[[T], None] | None = None,
    ) -> T:
        """Answer a read-like call from the first target in order, or from a race."""
        errors: dict[str, BaseException] = {}
        if how == "first" or len(names) == 1:
            for name in names:
                try:
                    result = self._on(name, op, path, fn)
                except Exception as exc:
                    errors[name] = exc
                    continue
                served_by.set(name)
                return result
            raise self._fetch_error(op, path, names, errors)
        futures: dict[Future[T], str] = dict(
            zip(
                self._pool.submit_all([partial(self._on, n, op, path, fn) for n in names]),
                names,
                strict=True,
            )
        )
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: names.index(futures[f])):
                result, err = result_or_error(future)
                if err is None:
                    if discard is not None:
                        for other in pending | (done - {future}):
                            other.add_done_callback(_discarder(discard))
                    served_by.set(futures[future])
                    return cast(T, result)
                errors[futures[future]] = err
        raise self._fetch_error(op, path, names, errors)

    def _fetch_error(
        self, op: str, path: str, names: Names, errors: Mapping[str, BaseException]
    ) -> MirrorError:
        ordered = {n: errors[n] for n in names if n in errors}
        if all(isinstance(e, NotFoundError) for e in ordered.values()):
            outcomes = {n: "not found" for n in ordered}
        else:
            outcomes = {n: _describe_error(e) for n, e in ordered.items()}
        return mirror_error(op, path, outcomes, ordered)

    # -- Storager -----------------------------------------------------------------------

    def _traced(self, op: str, path: str) -> contextlib.AbstractContextManager[None]:
        return span(self.describe_label(), op, path) if tracing() else contextlib.nullcontext()

    def read(self, path: str, **pairs: Any) -> bytes:
        names, how = self._select("read", path, pairs, READ_MODES)
        # Several targets may start reading: report the bytes of the answer only.
        callback = _callback("read", path, pairs)
        with self._traced("read", path):
            data = self._fetch("read", path, names, how, lambda s: s.read(path, **pairs))
        if callback is not None:
            callback(len(data))
        return data

    def open_reader(self, path: str, **pairs: Any) -> BinaryIO:
        names, how = self._select("open_reader", path, pairs, READ_MODES)
        with self._traced("open_reader", path):
            return self._fetch(
                "open_reader",
                path,
                names,
                how,
                lambda s: s.open_reader(path, **pairs),
                discard=lambda r: r.close(),
            )

    def stat(self, path: str, **pairs: Any) -> Object:
        names, how = self._select("stat", path, pairs, READ_MODES)
        with self._traced("stat", path):
            return self._fetch("stat", path, names, how, lambda s: s.stat(path, **pairs))

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        names, how = self._select("list", path, pairs, READ_MODES)
        with self._traced("list", path):
            return self._fetch("list", path, names, how, lambda s: prime(s.list(path, **pairs)))

    def delete(self, path: str, **pairs: Any) -> None:
        names, how = self._select("delete", path, pairs, WRITE_MODES)
        with self._traced("delete", path):
            if how == "parallel":
                outcome = self._parallel(
                    names, lambda n: self._on(n, "delete", path, lambda s: s.delete(path, **pairs))
                )
            else:
                outcome = {}
                for name in names:
                    try:
                        self._on(name, "delete", path, lambda s: s.delete(path, **pairs))
                        outcome[name] = (None, None)
                    except Exception as exc:
                        outcome[name] = (None, exc)
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if errors:
                outcomes = {
                    n: "ok" if e is None else _describe_error(e) for n, (_, e) in outcome.items()
                }
                raise mirror_error("delete", path, outcomes, errors)

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        names, how = self._select("write", path, pairs, WRITE_MODES)
        with self._traced("write", path):
            if isinstance(data, bytes | bytearray | memoryview):
                callback = _callback("write", path, pairs)
                obj: Object = self._mutate(
                    "write", path, [path], names, how, lambda s: s.write(path, data, **pairs)
                )
                if callback is not None:
                    callback(len(data) if not isinstance(data, memoryview) else data.nbytes)
                return obj
            return self._fan_out(path, data, names, pairs)

    # -- mutations and rollback ---------------------------------------------------------

    def _mutate(
        self,
        op: str,
        path: str,
        touched: Names,
        names: Names,
        how: str,
        fn: Callable[[Storager], T],
    ) -> T:
        """Run a mutation on ``names``; on failure roll back the targets it succeeded on."""
        snapshots: dict[str, dict[str, IO[bytes] | None]] = {}

        def attempt(name: str) -> T:
            snapshots[name] = self._snapshot(name, touched)
            return self._on(name, op, path, fn)

        outcome: dict[str, tuple[Any, BaseException | None]] = {}
        try:
            if how == "parallel":
                outcome = self._parallel(names, attempt)
            else:
                for name in names:
                    try:
                        outcome[name] = (attempt(name), None)
                    except Exception as exc:
                        outcome[name] = (None, exc)
                        break
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if not errors:
                return outcome[names[0]][0]  # type: ignore[no-any-return]
            words = self._roll_back(outcome, snapshots, touched)
            words.update({n: "not attempted" for n in names if n not in outcome})
            raise mirror_error(op, path, {n: words[n] for n in names}, errors)
        finally:
            for snaps in snapshots.values():
                for spool in snaps.values():
                    if spool is not None:
                        spool.close()

    def _snapshot(self, name: str, paths: Names) -> dict[str, IO[bytes] | None]:
        """Save what ``paths`` hold on target ``name`` (None: nothing there)."""
        if self._rollback != "restore":
            return {}
        target = self._targets[name]
        saved: dict[str, IO[bytes] | None] = {}
        for p in paths:
            try:
                if target.stat(p).is_dir:
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
            saved[p] = spool
        return saved

    def _roll_back(
        self,
        outcome: Mapping[str, tuple[Any, BaseException | None]],
        snapshots: Mapping[str, Mapping[str, IO[bytes] | None]],
        touched: Names,
    ) -> dict[str, str]:
        words: dict[str, str] = {}
        for name, (_, err) in outcome.items():
            if err is not None:
                words[name] = "cancelled" if isinstance(err, _FeedAborted) else _describe_error(err)
                continue
            if self._rollback == "none":
                words[name] = "ok (not rolled back)"
                continue
            target = self._targets[name]
            try:
                for p in touched:
                    saved = snapshots.get(name, {}).get(p) if self._rollback == "restore" else None
                    if saved is None:
                        target.delete(p)
                    else:
                        saved.seek(0)
                        target.write(p, saved)
                words[name] = "ok (rolled back)"
            except Exception as exc:
                words[name] = f"ok (rollback failed: {_describe_error(exc)})"
        return words

    def _fan_out(self, path: str, data: WriteData, names: Names, pairs: dict[str, Any]) -> Object:
        """Write one stream to every target, reading the source once, in bounded memory."""
        callback = _callback("write", path, pairs)
        source = iter_chunks(
            "write", "mirror", path, data, size=pairs.get("size"), io_callback=callback
        )
        queues = {n: queue.Queue[Any](maxsize=self._queue_chunks) for n in names}
        snapshots: dict[str, dict[str, IO[bytes] | None]] = {}

        def feed(name: str) -> Iterator[bytes]:
            q = queues[name]
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        def consume(name: str) -> Object:
            snapshots[name] = self._snapshot(name, [path])
            return self._on(name, "write", path, lambda s: s.write(path, feed(name), **pairs))

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
                put(_FeedAborted("write", "mirror", path))
            wait(list(futures.values()))
            outcome = {n: result_or_error(futures[n]) for n in names}
            errors = {n: e for n, (_, e) in outcome.items() if e is not None}
            if source_error is None and not errors:
                return outcome[names[0]][0]  # type: ignore[no-any-return]
            words = self._roll_back(outcome, snapshots, [path])
            if source_error is not None:
                raise source_error
            primary = {n: e for n, e in errors.items() if not isinstance(e, _FeedAborted)}
            raise mirror_error("write", path, {n: words[n] for n in names}, primary or errors)
        finally:
            for snaps in snapshots.values():
                for spool in snaps.values():
                    if spool is not None:
                        spool.close()


def _discarder(discard: Callable[[Any], None]) -> Callable[[Future[Any]], None]:
    def done(future: Future[Any]) -> None:
        result, err = result_or_error(future)
        if err is None:
            with contextlib.suppress(Exception):
                discard(result)

    return done


def _callback(op: str, path: str, pairs: dict[str, Any]) -> Callable[[int], None] | None:
    """Take the io_callback pair out of ``pairs``: the Mirror calls it once, not per target."""
    callback = pairs.pop("io_callback", None)
    if callback is not None and not callable(callback):
        raise PairInvalidError(op, "mirror", path, "pair 'io_callback' must be callable")
    return cast("Callable[[int], None] | None", callback)


def _check_mode(op: str, name: str, value: object, modes: Sequence[str]) -> None:
    if value not in modes:
        raise InvalidArgumentError(
            op, "mirror", "", f"{name} must be one of {', '.join(modes)}, not {value!r}"
        )


# -- capability mixins ----------------------------------------------------------------------


class _MirrorCopier(Mirror, Copier):
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("copy", src, pairs, WRITE_MODES)
        with self._traced("copy", src):
            self._mutate(
                "copy", src, [dst], names, how, lambda s: cast(Copier, s).copy(src, dst, **pairs)
            )


class _MirrorMover(Mirror, Mover):
    def move(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("move", src, pairs, WRITE_MODES)
        with self._traced("move", src):
            self._mutate(
                "move",
                src,
                [src, dst],
                names,
                how,
                lambda s: cast(Mover, s).move(src, dst, **pairs),
            )


class _MirrorAppender(Mirror, Appender):
    def append(self, path: str, data: WriteData, **pairs: Any) -> Object:
        names, how = self._select("append", path, pairs, WRITE_MODES)
        if not isinstance(data, bytes | bytearray | memoryview):
            # Every target appends the same bytes: read a stream once, in memory.
            data = b"".join(
                bytes(c)
                for c in iter_chunks("append", "mirror", path, data, size=pairs.pop("size", None))
            )
        payload = data
        with self._traced("append", path):
            return self._mutate(
                "append",
                path,
                [path],
                names,
                how,
                lambda s: cast(Appender, s).append(path, payload, **pairs),
            )


class _MirrorDirer(Mirror, Direr):
    def create_dir(self, path: str, **pairs: Any) -> Object:
        names, how = self._select("create_dir", path, pairs, WRITE_MODES)
        with self._traced("create_dir", path):
            return self._mutate(
                "create_dir",
                path,
                [],
                names,
                how,
                lambda s: cast(Direr, s).create_dir(path, **pairs),
            )


Mirror._capability_mixins = {
    Copier: _MirrorCopier,
    Mover: _MirrorMover,
    Appender: _MirrorAppender,
    Direr: _MirrorDirer,
}
