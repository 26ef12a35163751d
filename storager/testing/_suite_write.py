"""The conformance tests of write: overwrite, empty objects, data kinds, sizes, failures."""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storager._errors import InvalidArgumentError, NotFoundError
from storager._protocols import Storager
from storager.testing._gating import covers
from storager.testing._suite_base import _paths


class _SourceFailure(Exception):
    """Raised by a test's own data source; a store must hand it back unchanged."""


class WriteTests:
    """The contracts of ``write``; a mixin of ``StoragerSuite``."""

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
