"""The conformance tests of streaming: large writes read back whole, in bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Iterator

import pytest

from storager._protocols import Storager
from storager.testing._gating import covers
from storager.testing._suite_base import MiB, random_content


class StreamingTests:
    """The contracts of streaming; a mixin of ``StoragerSuite``."""

    # Set on StoragerSuite, where a subclass may change it.
    write_memory_limit: int | None

    @pytest.mark.slow
    @covers("write", "open_reader", "stat")
    def test_write_streams_64mib_and_reads_back(self, store: Storager) -> None:
        digest = hashlib.sha256()
        base = random_content(MiB)

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
        base = random_content(MiB)

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
