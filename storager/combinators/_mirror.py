"""Mirror: one logical store over several named targets that hold the same objects.

Writes go to every target, one after another in the standard order (``sequential``)
or all at once (``parallel``); when a write fails on some targets, what it wrote on the
others is rolled back. Reads take the first target that answers, in order (``first``),
or ask all at once and take the first good answer (``race``).

The machinery of changes (fan-out, rollback) is in ``_mirror_write``, multipart
uploads in ``_mirror_multipart``, the errors in ``_mirror_errors``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import Any, BinaryIO, TypeVar, cast

from storager._errors import InvalidArgumentError
from storager._object import Object
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Segmenter,
    Storager,
    WriteData,
)
from storager._streams import iter_chunks
from storager.combinators._base import check_names, common_capabilities, prime, served_by
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
from storager.combinators._mirror_multipart import MirrorSegmenter
from storager.combinators._mirror_policy import fetch_error
from storager.combinators._mirror_write import MirrorBase, Names
from storager.combinators._path_locks import PathLocks
from storager.combinators._pool import SlotPool, result_or_error

__all__ = ["Mirror", "MirrorError"]

T = TypeVar("T")

#: Presigner is left out on purpose: a URL reaches one target, so a PUT through it
#: would change one copy only, and the protocol cannot offer reads without writes.
_SUPPORTED = frozenset({Copier, Mover, Segmenter, Appender, Direr, Linker})


class Mirror(MirrorBase):
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

    The Mirror is a Copier, Mover, Segmenter, Appender, Direr and Linker when every
    target is; never a Presigner (a signed URL reaches one target only).

    Raises:
        InvalidArgumentError: No targets, a target that is not a Storager, an
            unknown mode or target name.
    """

    def __init__(
        self,
        targets: Mapping[str, Storager],
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
            if not isinstance(name, str) or not isinstance(target, Storager):
                raise InvalidArgumentError(
                    "new", "mirror", "", f"target {name!r} must be a Storager named by a str"
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
        size = max(len(targets), workers or 2 * len(targets))
        self._pool = SlotPool(size, "storager-mirror")
        self._locks = PathLocks()

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

    def _close(self) -> None:
        self._pool.shutdown()

    # -- reads --------------------------------------------------------------------------

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
        return fetch_error(op, path, names, errors)

    def read(self, path: str, **pairs: Any) -> bytes:
        names, how = self._select("read", path, pairs, READ_MODES)
        # Several targets may start reading: report the bytes of the answer only.
        callback = take_callback("read", path, pairs)
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

    # -- changes ------------------------------------------------------------------------

    def delete(self, path: str, **pairs: Any) -> None:
        names, how = self._select("delete", path, pairs, WRITE_MODES)
        with self._traced("delete", path):
            self._run_all("delete", path, names, how, lambda s: s.delete(path, **pairs))

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        names, how = self._select("write", path, pairs, WRITE_MODES)
        with self._traced("write", path):
            if isinstance(data, bytes | bytearray | memoryview):
                callback = take_callback("write", path, pairs)
                obj: Object = self._mutate(
                    "write", path, [path], names, how, lambda _, s: s.write(path, data, **pairs)
                )
                if callback is not None:
                    callback(len(data) if not isinstance(data, memoryview) else data.nbytes)
                return obj
            results = self._fan_out(
                "write",
                path,
                data,
                names,
                pairs,
                lambda _, s, chunks: s.write(path, chunks, **pairs),
                [path],
            )
            return results[names[0]]


def _discarder(discard: Callable[[Any], None]) -> Callable[[Future[Any]], None]:
    def done(future: Future[Any]) -> None:
        result, err = result_or_error(future)
        if err is None:
            with contextlib.suppress(Exception):
                discard(result)

    return done


# -- capability mixins ----------------------------------------------------------------------


class _MirrorCopier(Mirror, Copier):
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        names, how = self._select("copy", src, pairs, WRITE_MODES)
        with self._traced("copy", src):
            self._mutate(
                "copy", src, [dst], names, how, lambda _, s: cast(Copier, s).copy(src, dst, **pairs)
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
                lambda _, s: cast(Mover, s).move(src, dst, **pairs),
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
                lambda _, s: cast(Appender, s).append(path, payload, **pairs),
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
                lambda _, s: cast(Direr, s).create_dir(path, **pairs),
            )


class _MirrorLinker(Mirror, Linker):
    def create_link(self, path: str, target: str, **pairs: Any) -> Object:
        """Create the link on every target; where another fails, put ``path`` back."""
        names, how = self._select("create_link", path, pairs, WRITE_MODES)
        with self._traced("create_link", path):
            return self._mutate(
                "create_link",
                path,
                [path],
                names,
                how,
                lambda _, s: cast(Linker, s).create_link(path, target, **pairs),
            )


Mirror._capability_mixins = {
    Copier: _MirrorCopier,
    Mover: _MirrorMover,
    Segmenter: MirrorSegmenter,
    Appender: _MirrorAppender,
    Direr: _MirrorDirer,
    Linker: _MirrorLinker,
}
