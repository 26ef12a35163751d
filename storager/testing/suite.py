"""The conformance suite: every behaviour contract, as a pytest test base class.

Subclass :class:`StoragerSuite` and override one fixture, ``storager_factory``::

    class TestMyStore(StoragerSuite):
        @pytest.fixture
        def storager_factory(self):
            return url_factory("s3://bucket/?endpoint=http://127.0.0.1:9000")

Each test runs in a fresh random work_dir (``/storager-test-<hex>/``), so runs never
collide, and removes what it wrote afterwards (best effort). Tests for a capability
the store lacks are skipped with the reason. Nothing assumes an order of listings
unless the store declares ``list_sorted``, nor explicit directories, so the suite
runs on object stores as well as on file systems.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import secrets
import threading
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    PairUnsupportedError,
    PathInvalidError,
    StorageError,
)
from storager._object import Multipart, Object
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
)
from storager._service import Service
from storager.testing._gating import covers, missing_coverage

__all__ = ["StoragerSuite", "covers"]


class _SourceFailure(Exception):
    """Raised by a test's own data source; a store must hand it back unchanged."""


MiB = 1 << 20
#: The global op pairs tried, in order, as "a real pair this operation does not accept".
_FOREIGN_PAIRS = ("content_type", "storage_class", "expire", "list_mode", "offset")
_UNKNOWN_PAIR = "storager_no_such_pair"

Factory = Callable[..., Storager]


def _paths(objects: Iterator[Object]) -> Counter[str]:
    return Counter(obj.path for obj in objects)


def _files(objects: Iterator[Object]) -> Counter[str]:
    """Count the listed paths that are not directories (prefix mode may show markers)."""
    return Counter(obj.path for obj in objects if not obj.is_dir)


class StoragerSuite:
    """The conformance suite; subclass it and override ``storager_factory``.

    Class attributes a subclass may change:
        write_memory_limit: The traced peak a 64 MiB streaming write may reach, in
            bytes; ``None`` skips the check. The memory service stores objects in
            process memory, so the check is skipped there whatever this says.
    """

    write_memory_limit: int | None = 32 * MiB

    # -- fixtures ---------------------------------------------------------------------

    @pytest.fixture
    def storager_factory(self) -> Factory:
        """Return ``(work_dir, **init_pairs) -> Storager``; subclasses override it."""
        pytest.fail(
            f"{type(self).__name__} must override the storager_factory fixture "
            "(see storager.testing.url_factory)"
        )

    @pytest.fixture
    def work_dir(self) -> str:
        """A fresh random absolute work_dir for this test."""
        return f"/storager-test-{secrets.token_hex(6)}/"

    @pytest.fixture
    def store(self, storager_factory: Factory, work_dir: str) -> Iterator[Storager]:
        """A store opened in ``work_dir``; what the test wrote is removed afterwards."""
        store = storager_factory(work_dir)
        try:
            yield store
        finally:
            with contextlib.suppress(Exception):
                _cleanup(store)
            store.close()

    # -- write ------------------------------------------------------------------------

    @covers("write")
    def test_write_overwrites_existing_object(self, store: Storager) -> None:
        store.write("over.txt", b"first version, longer")
        store.write("over.txt", b"second")
        assert store.read("over.txt") == b"second"
        assert store.stat("over.txt").content_length == 6

    @covers("write", feature="write_empty")
    def test_write_empty_creates_empty_object(self, store: Storager) -> None:
        store.write("empty.txt", b"")
        assert store.read("empty.txt") == b""
        assert store.stat("empty.txt").content_length == 0
        assert "empty.txt" in _paths(store.list(""))

    @covers("write")
    @pytest.mark.parametrize(
        "kind", ["bytes", "bytearray", "memoryview", "bytesio", "generator", "file"]
    )
    def test_write_accepts_every_data_kind(
        self, store: Storager, kind: str, tmp_path: Path
    ) -> None:
        content = b"".join(bytes([i]) * 1000 for i in range(40))
        data: Any
        if kind == "bytes":
            data = content
        elif kind == "bytearray":
            data = bytearray(content)
        elif kind == "memoryview":
            data = memoryview(content)
        elif kind == "bytesio":
            data = io.BytesIO(content)
        elif kind == "generator":
            data = (content[i : i + 4096] for i in range(0, len(content), 4096))
        else:
            local = tmp_path / "source.bin"
            local.write_bytes(content)
            data = local.open("rb")
        try:
            store.write(f"kind-{kind}.bin", data)
        finally:
            if kind == "file":
                data.close()
        assert store.read(f"kind-{kind}.bin") == content
        assert store.stat(f"kind-{kind}.bin").content_length == len(content)

    @covers("write")
    def test_write_str_data_raises_invalid_argument(self, store: Storager) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            store.write("text.txt", "not bytes")  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        with pytest.raises(NotFoundError):
            store.stat("text.txt")

    @covers("write")
    @pytest.mark.parametrize("given", [3, 100], ids=["shorter", "longer"])
    def test_write_size_mismatch_raises_and_keeps_existing(
        self, store: Storager, given: int
    ) -> None:
        store.write("sized.txt", b"original")
        for data in (b"0123456789", iter([b"01234", b"56789"])):
            with pytest.raises(InvalidArgumentError) as info:
                store.write("sized.txt", data, size=given)
            assert isinstance(info.value, ValueError)
            assert store.read("sized.txt") == b"original"
        with pytest.raises(InvalidArgumentError):
            store.write("never.txt", b"0123456789", size=given)
        with pytest.raises(NotFoundError):
            store.stat("never.txt")

    @covers("write")
    def test_write_source_error_reaches_caller_unchanged(self, store: Storager) -> None:
        """The caller's own data source failing is the caller's error, not the store's."""
        store.write("source.txt", b"original")

        def failing() -> Iterator[bytes]:
            yield b"partial data"
            raise _SourceFailure("the caller's generator broke")

        with pytest.raises(_SourceFailure):
            store.write("source.txt", failing())
        with pytest.raises(_SourceFailure):
            store.write("fresh.txt", failing())
        assert store.read("source.txt") == b"original"
        with pytest.raises(NotFoundError):
            store.stat("fresh.txt")

    @covers("write")
    def test_concurrent_writers_leave_one_whole_version(self, store: Storager) -> None:
        writers, chunks, chunk_size = 8, 8, 16 * 1024
        versions = {bytes([65 + i]) * (chunks * chunk_size) for i in range(writers)}
        for _ in range(3):
            barrier = threading.Barrier(writers)

            def write(i: int, barrier: threading.Barrier = barrier) -> None:
                def gen() -> Iterator[bytes]:
                    for _ in range(chunks):
                        yield bytes([65 + i]) * chunk_size
                        # Uneven pauses, so writers overtake one another between chunks.
                        time.sleep(random.uniform(0, 0.002))

                barrier.wait()
                store.write("contended.bin", gen())

            with ThreadPoolExecutor(writers) as pool:
                list(pool.map(write, range(writers)))
            content = store.read("contended.bin")
            assert content in versions, "concurrent writes left a mix of versions"

    # -- read -------------------------------------------------------------------------

    @covers("read")
    def test_read_missing_object_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError) as info:
            store.read("missing.txt")
        assert isinstance(info.value, FileNotFoundError)

    @covers("read")
    def test_read_offset_and_size_return_exactly_that_range(self, store: Storager) -> None:
        content = bytes(range(256)) * 4
        store.write("range.bin", content)
        for offset, size in [(0, 1), (1, 10), (100, 256), (0, 1024), (1023, 1)]:
            assert (
                store.read("range.bin", offset=offset, size=size) == content[offset : offset + size]
            )
        assert store.read("range.bin", offset=1000) == content[1000:]
        assert store.read("range.bin", size=5) == content[:5]

    @covers("read")
    def test_read_size_past_end_returns_shorter_result(self, store: Storager) -> None:
        store.write("short.bin", b"0123456789")
        assert store.read("short.bin", offset=6, size=100) == b"6789"
        assert store.read("short.bin", size=11) == b"0123456789"

    @covers("read")
    def test_read_offset_at_or_past_end_returns_empty(self, store: Storager) -> None:
        store.write("end.bin", b"0123456789")
        assert store.read("end.bin", offset=10) == b""
        assert store.read("end.bin", offset=10, size=5) == b""
        assert store.read("end.bin", offset=50) == b""

    @covers("read")
    def test_read_io_callback_sees_byte_count(self, store: Storager) -> None:
        content = secrets.token_bytes(100_000)
        store.write("callback.bin", content)
        seen: list[int] = []
        assert store.read("callback.bin", io_callback=seen.append) == content
        assert sum(seen) == len(content)
        seen.clear()
        store.read("callback.bin", offset=10, size=1000, io_callback=seen.append)
        assert sum(seen) == 1000

    @covers("read", "create_dir")
    def test_read_directory_raises(self, store: Storager) -> None:
        cast(Direr, store).create_dir("adir")
        for path in ("adir", "adir/"):
            with pytest.raises((ObjectModeInvalidError, NotFoundError)):
                store.read(path)

    # -- open_reader ------------------------------------------------------------------

    @covers("open_reader")
    def test_open_reader_missing_object_raises_when_called(self, store: Storager) -> None:
        with pytest.raises(NotFoundError):
            store.open_reader("missing.bin")

    @covers("open_reader")
    def test_open_reader_is_seekable_and_matches_read(self, store: Storager) -> None:
        content = secrets.token_bytes(300_000)
        store.write("reader.bin", content)
        with store.open_reader("reader.bin") as reader:
            assert reader.seekable()
            assert reader.read() == store.read("reader.bin") == content
            reader.seek(1000)
            assert reader.tell() == 1000
            buffer = bytearray(500)
            assert reader.readinto(buffer) == 500  # type: ignore[attr-defined]
            assert bytes(buffer) == content[1000:1500]
            assert reader.tell() == 1500
            reader.seek(-10, io.SEEK_END)
            assert reader.read() == content[-10:]
            reader.seek(0)
            assert reader.read(7) == content[:7]

    @covers("open_reader")
    def test_open_reader_offset_and_size(self, store: Storager) -> None:
        content = bytes(range(256)) * 40
        store.write("reader-range.bin", content)
        with store.open_reader("reader-range.bin", offset=100, size=1000) as reader:
            assert reader.read() == content[100:1100]
        with store.open_reader("reader-range.bin", offset=10_000) as reader:
            assert reader.read() == content[10_000:]
        with store.open_reader("reader-range.bin", size=10) as reader:
            assert reader.read() == content[:10]

    # -- stat, delete -----------------------------------------------------------------

    @covers("stat")
    def test_stat_reports_length_just_written(self, store: Storager) -> None:
        for length in (1, 4096, 70_001):
            obj = store.write("stat.bin", secrets.token_bytes(length))
            assert obj.content_length in (None, length)
            stat = store.stat("stat.bin")
            assert stat.content_length == length
            assert stat.path == "stat.bin"
            assert not stat.is_dir

    @covers("stat")
    def test_stat_missing_object_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError) as info:
            store.stat("missing.txt")
        assert isinstance(info.value, FileNotFoundError)

    @covers("delete")
    def test_delete_missing_object_is_idempotent(self, store: Storager) -> None:
        store.delete("never-written.txt")
        store.write("twice.txt", b"x")
        store.delete("twice.txt")
        store.delete("twice.txt")
        with pytest.raises(NotFoundError):
            store.stat("twice.txt")

    @covers("delete")
    def test_delete_then_stat_raises_not_found(self, store: Storager) -> None:
        store.write("gone.txt", b"x")
        store.write("kept.txt", b"y")
        store.delete("gone.txt")
        with pytest.raises(NotFoundError):
            store.stat("gone.txt")
        with pytest.raises(NotFoundError):
            store.read("gone.txt")
        assert store.read("kept.txt") == b"y"
        assert "gone.txt" not in _paths(store.list(""))

    # -- list -------------------------------------------------------------------------

    @covers("list")
    def test_list_dir_mode_returns_one_level_once(self, store: Storager) -> None:
        for key in ("a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt", "sub/deeper/e.txt"):
            store.write(key, b"x")
        top = list(store.list(""))
        assert _paths(iter(top)) == Counter({"a.txt": 1, "b.txt": 1, "sub/": 1})
        assert [o.is_dir for o in top if o.path == "sub/"] == [True]
        assert all(not o.is_dir for o in top if o.path != "sub/")
        expected = Counter({"sub/c.txt": 1, "sub/deeper/": 1})
        assert _paths(store.list("sub/")) == expected
        assert _paths(store.list("sub/", list_mode="dir")) == expected

    @covers("list")
    def test_list_dir_mode_shows_implicit_directories(self, store: Storager) -> None:
        store.write("implicit/b.txt", b"x")
        assert _paths(store.list("")) == Counter({"implicit/": 1})

    @covers("list")
    def test_list_prefix_mode_returns_every_key_once(self, store: Storager) -> None:
        keys = ["p/a.txt", "p/b/c.txt", "p/b/d/e.txt", "p/bx.txt", "q.txt", "pq.txt"]
        for key in keys:
            store.write(key, b"x")
        assert _files(store.list("p/", list_mode="prefix")) == Counter(
            {"p/a.txt": 1, "p/b/c.txt": 1, "p/b/d/e.txt": 1, "p/bx.txt": 1}
        )
        assert _files(store.list("p/b", list_mode="prefix")) == Counter(
            {"p/b/c.txt": 1, "p/b/d/e.txt": 1, "p/bx.txt": 1}
        )
        assert _files(store.list("", list_mode="prefix")) == Counter(keys)

    @covers("list")
    def test_list_empty_or_missing_path_yields_nothing(self, store: Storager) -> None:
        assert list(store.list("")) == []
        assert list(store.list("", list_mode="prefix")) == []
        store.write("other/x.txt", b"x")
        for mode in ("dir", "prefix"):
            assert list(store.list("missing/", list_mode=mode)) == []
            assert list(store.list("missing", list_mode=mode)) == []

    @covers("list", feature="list_sorted")
    def test_list_sorted_comes_in_lexical_order(self, store: Storager) -> None:
        for key in ("b.txt", "a.txt", "c/x.txt", "ab.txt", "c.txt"):
            store.write(key, b"x")
        for mode in ("dir", "prefix"):
            listed = [obj.path for obj in store.list("", list_mode=mode)]
            assert listed == sorted(listed)

    @covers("list")
    def test_list_spans_pages_each_object_once(self, store: Storager) -> None:
        keys = [f"many/{i:04d}.txt" for i in range(1001)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: store.write(key, b"x"), keys))
        expected = Counter(keys)
        assert _files(store.list("many/", list_mode="prefix")) == expected
        assert _paths(store.list("many/", list_mode="dir")) == expected

    # -- names and paths --------------------------------------------------------------

    @covers("write", "read", "stat", "list")
    @pytest.mark.parametrize(
        "name",
        [
            "with space.txt",
            "caf\u00e9.txt",
            "\u65e5\u672c/\u8a9e.txt",
            "emoji-\U0001f600.txt",
            "at@and&plus+hash#.txt",
            "percent%41%2F%25.txt",
            "equals=sign.txt",
            "question?mark.txt",
            "/".join(f"level{i}" for i in range(12)) + "/leaf.txt",
        ],
        ids=[
            "space",
            "unicode",
            "cjk",
            "emoji",
            "at-amp-plus-hash",
            "percent",
            "equals",
            "question",
            "nested-12",
        ],
    )
    def test_names_round_trip(self, store: Storager, name: str) -> None:
        content = name.encode()
        try:
            store.write(name, content)
        except PathInvalidError as exc:
            if "?" in name:
                pytest.skip(f"store refuses '?' in names: {exc}")
            raise
        assert store.read(name) == content
        stat = store.stat(name)
        assert stat.content_length == len(content)
        assert stat.path == name
        parent = name.rpartition("/")[0]
        assert _paths(store.list(parent + "/" if parent else "")) == Counter({name: 1})
        assert _files(store.list("", list_mode="prefix")) == Counter({name: 1})

    @covers("write", "read", "stat", "delete", "list")
    def test_path_climbing_past_root_raises_path_invalid(self, store: Storager) -> None:
        depth = store.metadata().work_dir.count("/") - 1
        marker = f"escape-{secrets.token_hex(4)}.txt"
        climbs = [
            "../" * (depth + 1) + marker,
            "/../" + marker,
            "a/" + "../" * (depth + 2) + marker,
        ]
        for path in climbs:
            for call in _path_calls(store, path):
                with pytest.raises(PathInvalidError) as info:
                    call()
                assert isinstance(info.value, ValueError)
        with pytest.raises(NotFoundError):
            store.stat("/" + marker)
        assert list(store.list("", list_mode="prefix")) == []

    @covers("write", "read", "stat", "delete", "list")
    def test_nul_byte_in_path_raises_path_invalid(self, store: Storager) -> None:
        calls = _path_calls(store, "nul\x00.txt")
        for call in calls:
            with pytest.raises(PathInvalidError) as info:
                call()
            assert isinstance(info.value, ValueError)
        assert list(store.list("", list_mode="prefix")) == []

    @covers("write", "read", "stat")
    def test_absolute_path_inside_store_works(self, store: Storager) -> None:
        work_dir = store.metadata().work_dir
        store.write("rel.txt", b"relative")
        assert store.read(work_dir + "rel.txt") == b"relative"
        store.write(work_dir + "abs/x.txt", b"absolute")
        assert store.read("abs/x.txt") == b"absolute"
        assert store.stat(work_dir + "abs/x.txt").path == "abs/x.txt"

    @covers("write", "read", "list")
    def test_backslashes_are_normalised(self, store: Storager) -> None:
        store.write("back\\slash.txt", b"x")
        assert store.read("back/slash.txt") == b"x"
        assert _paths(store.list("back/")) == Counter({"back/slash.txt": 1})
        assert store.read("back\\slash.txt") == b"x"

    def test_metadata_work_dir_equals_the_one_given(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        base = getattr(storager_factory, "base_work_dir", "/")
        meta = store.metadata()
        assert meta.work_dir == base.rstrip("/") + work_dir
        assert meta.service

    # -- errors -----------------------------------------------------------------------

    @covers("read", "stat", "open_reader")
    def test_errors_carry_op_service_and_path(self, store: Storager) -> None:
        # A composite store (a combinator) passes on the error of the child that
        # answered, so the service named is that child's: any non-empty name shown in
        # the message is right; a plain service names itself.
        service = store.metadata().service
        calls: dict[str, Callable[[], object]] = {
            "read": lambda: store.read("no/such-object.txt"),
            "stat": lambda: store.stat("no/such-object.txt"),
            "open_reader": lambda: store.open_reader("no/such-object.txt"),
        }
        for op, call in calls.items():
            with pytest.raises(StorageError) as info:
                call()
            err = info.value
            assert isinstance(err, NotFoundError)
            assert err.op == op
            assert err.service and err.service in str(err)
            assert err.service == service or not isinstance(store, Service)
            assert err.path.endswith("no/such-object.txt")
            assert op in str(err)
            assert err.path in str(err)
        with pytest.raises(PathInvalidError) as invalid:
            store.write("../" * 40 + "x", b"x")
        assert invalid.value.op == "write"
        assert invalid.value.service == service or not isinstance(store, Service)
        assert "write" in str(invalid.value)

    # -- pairs ------------------------------------------------------------------------

    @covers("read", "list")
    def test_supported_pair_works(self, store: Storager) -> None:
        store.write("pairs/a.txt", b"0123456789")
        assert store.read("pairs/a.txt", offset=2, size=3) == b"234"
        assert _files(store.list("pairs/", list_mode="prefix")) == Counter({"pairs/a.txt": 1})

    @covers("write", accepts=("write", "content_type"))
    def test_supported_content_type_is_stored(self, store: Storager) -> None:
        store.write("typed.txt", b"x", content_type="text/x-storager")
        assert store.stat("typed.txt").content_type == "text/x-storager"

    @covers("stat", "read")
    def test_unsupported_pair_raises_pair_unsupported(self, store: Storager) -> None:
        service = store.metadata().service
        capability = store.metadata().capability
        store.write("pairs.txt", b"x")
        for op in ("stat", "read"):
            foreign = [p for p in _FOREIGN_PAIRS if not capability.accepts(op, p)][:1]
            for pair in [*foreign, _UNKNOWN_PAIR]:
                call = store.stat if op == "stat" else store.read
                with pytest.raises(PairUnsupportedError) as info:
                    call("pairs.txt", **{pair: "text/plain"})
                err = info.value
                assert isinstance(err, NotImplementedError)
                assert err.op == op
                assert err.service == service or not isinstance(store, Service)
                for word in (pair, op, err.service):
                    assert word in str(err)

    @covers("stat", "write")
    def test_loose_pairs_ignores_unsupported_pair(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        try:
            loose = storager_factory(work_dir, loose_pairs=True)
        except (TypeError, StorageError) as exc:
            pytest.skip(f"the store refuses loose_pairs: {exc}")
        try:
            loose.write("loose.txt", b"x", **{_UNKNOWN_PAIR: 1})
            assert loose.stat("loose.txt", **{_UNKNOWN_PAIR: 1}).content_length == 1
            assert loose.read("loose.txt", **{_UNKNOWN_PAIR: 1}) == b"x"
        finally:
            loose.close()

    @covers("write", accepts=("write", "content_type"))
    def test_default_pair_applies_and_caller_wins(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        try:
            defaulted = storager_factory(work_dir, default_content_type="text/x-default")
        except (TypeError, StorageError) as exc:
            pytest.skip(f"the store refuses default_content_type: {exc}")
        try:
            defaulted.write("default.txt", b"x")
            assert defaulted.stat("default.txt").content_type == "text/x-default"
            defaulted.write("caller.txt", b"x", content_type="text/x-caller")
            assert defaulted.stat("caller.txt").content_type == "text/x-caller"
        finally:
            defaulted.close()

    @covers("read", "list")
    def test_wrong_pair_type_raises_pair_invalid(self, store: Storager) -> None:
        store.write("typed.bin", b"0123456789")
        bad: list[Callable[[], object]] = [
            lambda: store.read("typed.bin", offset="1"),
            lambda: store.read("typed.bin", size=1.5),
            lambda: store.read("typed.bin", offset=True),
            lambda: store.read("typed.bin", io_callback="not callable"),
            lambda: list(store.list("", list_mode="bogus")),
            lambda: list(store.list("", list_mode=1)),
        ]
        for call in bad:
            with pytest.raises(PairInvalidError) as info:
                call()
            assert isinstance(info.value, ValueError)

    # -- streaming --------------------------------------------------------------------

    @pytest.mark.slow
    @covers("write", "open_reader", "stat")
    def test_write_streams_64mib_and_reads_back(self, store: Storager) -> None:
        digest = hashlib.sha256()
        base = secrets.token_bytes(MiB)

        def chunks() -> Iterator[bytes]:
            for i in range(64):
                chunk = i.to_bytes(4, "big") + base[4:]
                digest.update(chunk)
                yield chunk

        store.write("big.bin", chunks())
        assert store.stat("big.bin").content_length == 64 * MiB
        read_back = hashlib.sha256()
        total = 0
        with store.open_reader("big.bin") as reader:
            while chunk := reader.read(MiB):
                read_back.update(chunk)
                total += len(chunk)
        assert total == 64 * MiB
        assert read_back.hexdigest() == digest.hexdigest()

    @pytest.mark.slow
    @covers("write")
    def test_write_memory_stays_bounded(self, store: Storager) -> None:
        limit = self.write_memory_limit
        if limit is None:
            pytest.skip("write_memory_limit is None for this suite")
        if store.metadata().service == "memory":
            pytest.skip("the memory service keeps each object in process memory")
        base = secrets.token_bytes(MiB)

        def chunks() -> Iterator[bytes]:
            for i in range(64):
                yield i.to_bytes(4, "big") + base[4:]

        tracemalloc.start()
        try:
            store.write("bounded.bin", chunks())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert store.stat("bounded.bin").content_length == 64 * MiB
        assert peak < limit, f"a 64 MiB write peaked at {peak / MiB:.1f} MiB"

    # -- Copier, Mover ----------------------------------------------------------------

    @covers("copy")
    def test_copy_overwrites_destination(self, store: Storager) -> None:
        store.write("src.txt", b"source")
        store.write("dst.txt", b"old destination, longer")
        cast(Copier, store).copy("src.txt", "dst.txt")
        assert store.read("dst.txt") == b"source"
        assert store.read("src.txt") == b"source"
        cast(Copier, store).copy("src.txt", "new/dst.txt")
        assert store.read("new/dst.txt") == b"source"

    @covers("copy")
    def test_copy_missing_source_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError):
            cast(Copier, store).copy("missing.txt", "dst.txt")
        with pytest.raises(NotFoundError):
            store.stat("dst.txt")

    @covers("move")
    def test_move_removes_source_and_overwrites_destination(self, store: Storager) -> None:
        store.write("src.txt", b"source")
        store.write("dst.txt", b"old destination, longer")
        cast(Mover, store).move("src.txt", "dst.txt")
        assert store.read("dst.txt") == b"source"
        with pytest.raises(NotFoundError):
            store.stat("src.txt")
        assert _files(store.list("", list_mode="prefix")) == Counter({"dst.txt": 1})

    @covers("move")
    def test_move_missing_source_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError):
            cast(Mover, store).move("missing.txt", "dst.txt")
        with pytest.raises(NotFoundError):
            store.stat("dst.txt")

    # -- Segmenter --------------------------------------------------------------------

    @covers("create_multipart", "write_multipart", "list_multipart", "complete_multipart")
    def test_multipart_round_trip_in_part_order(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        part_size = store.metadata().capability.multipart_part_size_min or 64 * 1024
        datas = {1: b"a" * part_size, 2: b"b" * part_size, 3: b"tail"}
        mp = seg.create_multipart("multi.bin")
        try:
            # Out of order on purpose: the object is joined by part number.
            parts = {n: seg.write_multipart(mp, n, datas[n]) for n in (2, 3, 1)}
            for n, part in parts.items():
                assert (part.number, part.size) == (n, len(datas[n]))
            listed = list(seg.list_multipart(mp))
            assert [(p.number, p.size) for p in listed] == [(n, len(datas[n])) for n in (1, 2, 3)]
            seg.complete_multipart(mp, [parts[1], parts[2], parts[3]])
        except BaseException:
            with contextlib.suppress(Exception):
                seg.abort_multipart(mp)
            raise
        assert store.read("multi.bin") == datas[1] + datas[2] + datas[3]
        assert store.stat("multi.bin").content_length == 2 * part_size + 4

    @covers("create_multipart", "write_multipart", "abort_multipart")
    def test_multipart_in_progress_is_invisible(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        mp = seg.create_multipart("pending/obj.bin")
        try:
            seg.write_multipart(mp, 1, b"part data")
            with pytest.raises(NotFoundError):
                store.stat("pending/obj.bin")
            with pytest.raises(NotFoundError):
                store.read("pending/obj.bin")
            assert _files(store.list("", list_mode="prefix")) == Counter()
            assert list(store.list("pending/")) == []
        finally:
            seg.abort_multipart(mp)

    @covers("create_multipart", "write_multipart", "abort_multipart")
    def test_multipart_abort_leaves_nothing_visible(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        mp = seg.create_multipart("aborted.bin")
        seg.write_multipart(mp, 1, b"part data")
        seg.abort_multipart(mp)
        with pytest.raises(NotFoundError):
            store.stat("aborted.bin")
        with pytest.raises(NotFoundError):
            store.read("aborted.bin")
        assert _files(store.list("", list_mode="prefix")) == Counter()

    @covers("write_multipart")
    def test_write_multipart_unknown_upload_raises_not_found(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        real = seg.create_multipart("unknown.bin")
        try:
            fake = Multipart(real.path, "storager-no-such-upload-" + secrets.token_hex(8))
            with pytest.raises(NotFoundError):
                seg.write_multipart(fake, 1, b"x")
        finally:
            seg.abort_multipart(real)

    # -- Appender, Direr, Linker ------------------------------------------------------

    @covers("append")
    def test_append_creates_then_appends(self, store: Storager) -> None:
        cast(Appender, store).append("log.txt", b"first,")
        assert store.read("log.txt") == b"first,"
        cast(Appender, store).append("log.txt", iter([b"sec", b"ond"]))
        assert store.read("log.txt") == b"first,second"
        assert store.stat("log.txt").content_length == 12

    @covers("create_dir")
    def test_create_dir_makes_a_directory(self, store: Storager) -> None:
        cast(Direr, store).create_dir("made")
        cast(Direr, store).create_dir("made")  # an existing directory is fine
        assert store.stat("made/").is_dir
        listed = [obj for obj in store.list("") if obj.path == "made/"]
        assert len(listed) == 1
        assert listed[0].is_dir

    @covers("create_link")
    def test_read_link_returns_target_content(self, store: Storager) -> None:
        store.write("target.txt", b"target content")
        cast(Linker, store).create_link("link.txt", "target.txt")
        assert store.read("link.txt") == b"target content"

    # -- Presigner --------------------------------------------------------------------

    @covers("presign_read")
    def test_presign_read_url_gets_content(self, store: Storager) -> None:
        store.write("signed.txt", b"signed content")
        url = cast(Presigner, store).presign_read("signed.txt", expire=300)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == b"signed content"

    @covers("presign_write")
    def test_presign_write_url_puts_content(self, store: Storager) -> None:
        url = cast(Presigner, store).presign_write("put.txt", expire=300)
        # urllib would send form-encoded Content-Type, which some servers parse as a form.
        headers = {"Content-Type": "application/octet-stream"}
        request = urllib.request.Request(url, data=b"put content", headers=headers, method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201, 204)
        assert store.read("put.txt") == b"put content"

    # -- the suite itself -------------------------------------------------------------

    def test_every_declared_capability_has_tests(self, store: Storager) -> None:
        missing = missing_coverage(store)
        assert not missing, f"declared but checked by no test: {', '.join(missing)}"


def _cleanup(store: Storager) -> None:
    """Delete what a test left in the store's work_dir, then the work_dir; ignore errors."""
    for obj in list(store.list("", list_mode="prefix")):
        with contextlib.suppress(Exception):
            store.delete(obj.path)
    # Directories left behind (fs, sftp, markers from create_dir), children first.
    dirs: list[str] = []
    pending = [""]
    while pending and len(dirs) < 10_000:
        for obj in store.list(pending.pop()):
            if obj.is_dir:
                dirs.append(obj.path)
                pending.append(obj.path)
    for path in sorted(dirs, key=len, reverse=True):
        with contextlib.suppress(Exception):
            store.delete(path)
    with contextlib.suppress(Exception):
        store.delete(store.metadata().work_dir)


def _path_calls(store: Storager, path: str) -> list[Callable[[], object]]:
    """Return calls of write, read, stat, delete and list on ``path``."""
    return [
        lambda: store.write(path, b"x"),
        lambda: store.read(path),
        lambda: store.stat(path),
        lambda: store.delete(path),
        lambda: list(store.list(path)),
    ]
