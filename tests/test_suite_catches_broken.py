"""The conformance suite fails on stores that break a contract, and passes on good ones.

Each broken store below is a MemoryStorage or FsStorage that breaks exactly one
contract. For each, the relevant suite tests run in an inner pytest session (pytester):
they must fail on the broken store and pass on the good store it derives from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import pytest

from storager import (
    NotFoundError,
    Object,
    ObjectMode,
    PathInvalidError,
    StorageError,
    Storager,
    UnexpectedError,
)
from storager._streams import iter_chunks
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage, _Entry
from storager.services.memory._content import Content

pytest_plugins = ["pytester"]


# -- broken stores, one broken contract each ------------------------------------------


class NoOverwrite(MemoryStorage):
    """write keeps an existing object."""

    def _write(self, path: str, data: Any, **pairs: Any) -> Object:
        if path in self._objects:
            return self._to_object(path, self._objects[path])
        return super()._write(path, data, **pairs)


class DeleteMissingRaises(MemoryStorage):
    """delete of a missing object raises."""

    def _delete(self, path: str) -> None:
        if path not in self._objects:
            raise NotFoundError("delete", "memory", path)
        super()._delete(path)


class ReadIgnoresOffset(MemoryStorage):
    """read ignores offset."""

    def _read(self, path: str, *, offset: int | None, **pairs: Any) -> bytes:
        return super()._read(path, offset=None, **pairs)


class ListRepeatsPageEnd(MemoryStorage):
    """list yields the last object of each 1000-object page twice."""

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        for i, obj in enumerate(super()._list(path, list_mode=list_mode), start=1):
            yield obj
            if i % 1000 == 0:
                yield obj


class DirModeRecurses(MemoryStorage):
    """dir mode lists every key under the path, like prefix mode."""

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        prefix = path if path.endswith("/") else path + "/"
        return super()._list(prefix, list_mode="prefix")


class MoveKeepsSource(MemoryStorage):
    """move copies."""

    def _move(self, src: str, dst: str) -> None:
        self._copy(src, dst)


class CopyNoOverwrite(MemoryStorage):
    """copy keeps an existing destination."""

    def _copy(self, src: str, dst: str) -> None:
        if dst not in self._objects:
            super()._copy(src, dst)
        else:
            self._resolve_entry("copy", src)


class AbortCompletes(MemoryStorage):
    """abort_multipart completes the upload instead of dropping it."""

    def _abort_multipart(self, multipart: Any) -> None:
        parts = list(self._list_multipart(multipart))
        self._complete_multipart(multipart, parts)


class StatWrongLength(FsStorage):
    """stat reports one byte too many."""

    def _stat(self, path: str) -> Object:
        obj = super()._stat(path)
        if obj.content_length is None:
            return obj
        return dataclasses.replace(obj, content_length=obj.content_length + 1)


class EmptyWriteDropped(FsStorage):
    """an empty write stores nothing."""

    def _write(self, path: str, data: Any, **pairs: Any) -> Object:
        if isinstance(data, bytes | bytearray) and not data:
            return Object(self._rel(path), content_length=0)
        return super()._write(path, data, **pairs)


class SizeIgnored(MemoryStorage):
    """write stores data whose length differs from size."""

    def _write(self, path: str, data: Any, *, size: int | None, **pairs: Any) -> Object:
        return super()._write(path, data, size=None, **pairs)


class MissingReadsEmpty(MemoryStorage):
    """read of a missing object returns b''."""

    def _read(self, path: str, **pairs: Any) -> bytes:
        try:
            return super()._read(path, **pairs)
        except NotFoundError:
            return b""


class PercentMangled(MemoryStorage):
    """names are percent-decoded on the way in, so '%41' is stored as 'A'."""

    def _write(self, path: str, data: Any, **pairs: Any) -> Object:
        return super()._write(unquote(path), data, **pairs)

    def _read(self, path: str, **pairs: Any) -> bytes:
        return super()._read(unquote(path), **pairs)

    def _stat(self, path: str) -> Object:
        return super()._stat(unquote(path))


class PairsIgnored(MemoryStorage):
    """unsupported pairs are silently ignored."""

    def _reject_pairs(self, op: str, path: str, pairs: Mapping[str, Any]) -> None:
        return None


class PlainStorageErrors(MemoryStorage):
    """a missing object raises a plain StorageError, without FileNotFoundError."""

    def _read(self, path: str, **pairs: Any) -> bytes:
        try:
            return super()._read(path, **pairs)
        except NotFoundError:
            raise StorageError("read", "memory", path, "not found") from None


class UnexpectedErrors(MemoryStorage):
    """stat of a missing object raises UnexpectedError."""

    def _stat(self, path: str) -> Object:
        try:
            return super()._stat(path)
        except NotFoundError:
            raise UnexpectedError("stat", "memory", path) from None


class Frobnicator(Protocol, metaclass=type(Storager)):  # type: ignore[misc]
    """A capability protocol the suite does not know."""

    def frobnicate(self, path: str) -> None: ...


class UnknownProtocol(MemoryStorage, Frobnicator):
    """declares a capability protocol no suite test covers."""

    def frobnicate(self, path: str) -> None:
        return None


class UnknownOperation(MemoryStorage):
    """declares an operation no suite test covers."""

    capability = dataclasses.replace(
        MemoryStorage.capability,
        operations={**MemoryStorage.capability.operations, "frobnicate": frozenset()},
    )


class InterleavedWrites(MemoryStorage):
    """write stores each chunk in place as it arrives, so concurrent writers mix."""

    def _write(self, path: str, data: Any, *, size: int | None, **pairs: Any) -> Object:
        pos = self._put_at(path, 0, b"")
        for chunk in iter_chunks("write", "memory", path, data, size=size):
            pos = self._put_at(path, pos, bytes(chunk))
        with self._lock:
            entry = self._objects[path]
            self._objects[path] = dataclasses.replace(
                entry, data=Content((entry.data.range(0, pos),))
            )
        return self._to_object(path, self._objects[path])

    def _put_at(self, path: str, pos: int, chunk: bytes) -> int:
        with self._lock:
            current = self._objects.get(path)
            buffer = bytearray(current.data.whole() if current is not None else b"")
            buffer[pos : pos + len(chunk)] = chunk
            self._objects[path] = _Entry(
                Content((bytes(buffer),)), ObjectMode.READ, "", datetime.now(UTC)
            )
        return pos + len(chunk)


class LazyMissingReader(MemoryStorage):
    """open_reader of a missing object raises only on the first read."""

    def _open_reader(self, path: str, **pairs: Any) -> Any:
        if path not in self._objects:
            return _FailingReader(path)
        return super()._open_reader(path, **pairs)


class _FailingReader:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self, size: int = -1) -> bytes:
        raise NotFoundError("open_reader", "memory", self.path)

    def close(self) -> None:
        return None


class DotPathsAreObjects(MemoryStorage):
    """A path ending in '.' or '..' names the directory as if it were an object."""

    def _abs_path(self, op: str, path: str) -> str:
        if isinstance(path, str) and path.rpartition("/")[2] in (".", ".."):
            return self._work_dir[:-1]
        return super()._abs_path(op, path)


class NoneListsWorkDir(MemoryStorage):
    """list(None) lists the work_dir."""

    def _abs_dir(self, op: str, path: str) -> str:
        return self._work_dir if path is None else super()._abs_dir(op, path)


class FileOverDirectory(MemoryStorage):
    """An object may take the name of a directory, or sit under a file."""

    def _check_name_free(self, op: str, path: str) -> None:
        return None

    def _check_parents(self, op: str, path: str) -> None:
        return None


class CopyMoveBlameSource(MemoryStorage):
    """copy and move name the source when the destination is a directory path."""

    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        if dst.endswith("/"):
            raise PathInvalidError("copy", "memory", src, "directory path")
        super().copy(src, dst, **pairs)

    def move(self, src: str, dst: str, **pairs: Any) -> None:
        if dst.endswith("/"):
            raise PathInvalidError("move", "memory", src, "directory path")
        super().move(src, dst, **pairs)


# -- running the suite on them ---------------------------------------------------------


def _good_of(cls: type[Storager]) -> type[Storager]:
    return FsStorage if issubclass(cls, FsStorage) else MemoryStorage


def make_factory(cls: type[Storager], root: Path) -> Callable[..., Storager]:
    """Return a suite factory for ``cls``, under ``root`` when it is an fs store."""

    def factory(work_dir: str, **pairs: Any) -> Storager:
        if issubclass(cls, FsStorage):
            return cls(root=str(root), work_dir=work_dir, **pairs)
        return cls(work_dir=work_dir, **pairs)  # type: ignore[call-arg]

    return factory


_SUITE_FILE = """
import pytest
from storager.testing import StoragerSuite
from tests.test_suite_catches_broken import make_factory, {broken}, {good}


class TestBroken(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, tmp_path):
        return make_factory({broken}, tmp_path)


class TestGood(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, tmp_path):
        return make_factory({good}, tmp_path)
"""

CASES: list[tuple[type[Storager], list[str]]] = [
    (NoOverwrite, ["test_write_overwrites_existing_object"]),
    (DeleteMissingRaises, ["test_delete_missing_object_is_idempotent"]),
    (ReadIgnoresOffset, ["test_read_offset_and_size_return_exactly_that_range"]),
    (ListRepeatsPageEnd, ["test_list_spans_pages_each_object_once"]),
    (DirModeRecurses, ["test_list_dir_mode_returns_one_level_once"]),
    (MoveKeepsSource, ["test_move_removes_source_and_overwrites_destination"]),
    (CopyNoOverwrite, ["test_copy_overwrites_destination"]),
    (AbortCompletes, ["test_multipart_abort_leaves_nothing_visible"]),
    (StatWrongLength, ["test_stat_reports_length_just_written"]),
    (EmptyWriteDropped, ["test_write_empty_creates_empty_object"]),
    (SizeIgnored, ["test_write_size_mismatch_raises_and_keeps_existing"]),
    (MissingReadsEmpty, ["test_read_missing_object_raises_not_found"]),
    (PercentMangled, ["test_names_round_trip"]),
    (PairsIgnored, ["test_unsupported_pair_raises_pair_unsupported"]),
    (
        PlainStorageErrors,
        ["test_read_missing_object_raises_not_found", "test_errors_carry_op_service_and_path"],
    ),
    (UnexpectedErrors, ["test_stat_missing_object_raises_not_found"]),
    (UnknownProtocol, ["test_every_declared_capability_has_tests"]),
    (UnknownOperation, ["test_every_declared_capability_has_tests"]),
    (InterleavedWrites, ["test_concurrent_writers_leave_one_whole_version"]),
    (LazyMissingReader, ["test_open_reader_missing_object_raises_when_called"]),
    (DotPathsAreObjects, ["test_path_ending_in_dot_names_a_directory"]),
    (NoneListsWorkDir, ["test_non_str_path_is_refused_by_every_operation"]),
    (
        FileOverDirectory,
        [
            "test_object_cannot_take_a_directory_name",
            "test_object_cannot_be_put_under_a_file",
            "test_copy_cannot_put_an_object_over_a_directory",
            "test_move_cannot_put_an_object_over_a_directory",
            "test_copy_and_move_blame_the_destination_name",
            "test_no_name_below_a_file_at_any_depth",
            "test_multipart_cannot_complete_over_a_directory",
        ],
    ),
    (
        CopyMoveBlameSource,
        [
            "test_copy_refuses_directory_paths_naming_the_wrong_one",
            "test_move_refuses_directory_paths_naming_the_wrong_one",
        ],
    ),
]


def _outcomes(
    pytester: pytest.Pytester, broken: type[Storager], tests: list[str]
) -> dict[tuple[str, str], set[str]]:
    """Run ``tests`` on ``broken`` and on its good base; return outcomes by class and test."""
    good = _good_of(broken)
    pytester.makepyfile(
        test_broken_store=_SUITE_FILE.format(broken=broken.__name__, good=good.__name__)
    )
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-k", " or ".join(tests))
    outcomes: dict[tuple[str, str], set[str]] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        _, cls, name = report.nodeid.split("::")
        key = (cls, name.partition("[")[0])
        if report.when == "call" or report.outcome != "passed":
            outcomes.setdefault(key, set()).add(report.outcome)
    return outcomes


@pytest.mark.parametrize(("broken", "tests"), CASES, ids=[c[0].__name__ for c in CASES])
def test_suite_fails_on_broken_store(
    pytester: pytest.Pytester, broken: type[Storager], tests: list[str]
) -> None:
    outcomes = _outcomes(pytester, broken, tests)
    for test in tests:
        assert "failed" in outcomes.get(("TestBroken", test), set()), (
            f"{test} did not fail on {broken.__name__} ({broken.__doc__})"
        )
        assert outcomes.get(("TestGood", test)) == {"passed"}, (
            f"{test} did not pass on the good store: {outcomes.get(('TestGood', test))}"
        )
