"""The conformance tests of read and open_reader: ranges, callbacks, seeking."""

from __future__ import annotations

import io
from typing import cast

import pytest

from storager._errors import NotFoundError, ObjectModeInvalidError
from storager._protocols import Direr, Storager
from storager.testing._gating import covers
from storager.testing._suite_base import random_content


class ReadTests:
    """The contracts of ``read`` and ``open_reader``; a mixin of ``StoragerSuite``."""

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
        content = random_content(100_000)
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
        content = random_content(300_000)
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
