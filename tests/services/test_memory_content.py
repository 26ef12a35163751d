"""The memory service keeps an object as the pieces it arrived in: reads must not care.

A completed multipart upload is its parts' received pieces and an append adds a piece
(``services/memory/_content.py``); every way of reading such an object must give the
same bytes as one buffer would.
"""

from __future__ import annotations

import io
import os
import random

import pytest

from storager.services.memory import MemoryStorage
from storager.services.memory._content import SMALL_PIECE, Content, coalesce


def _pieces(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), 12))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_content_ranges_views_and_readers_match_the_joined_bytes() -> None:
    rng = random.Random(7)
    data = os.urandom(5000)
    content = Content([*_pieces(rng, data), b""])  # an empty piece is dropped
    assert len(content) == len(data) and content.whole() == data
    for _ in range(300):
        a = rng.randrange(-5, len(data) + 5)
        b = a + rng.randrange(0, 900)
        assert content.range(a, b) == data[max(a, 0) : b]
        if a >= 0:
            assert b"".join(content.views(a, b)) == data[a:b]
    reader = content.reader(100, 4100)
    assert isinstance(reader, io.BufferedReader) and reader.seekable()
    expected = data[100:4100]
    for _ in range(200):
        pos = rng.randrange(0, len(expected) + 3)
        reader.seek(pos)
        size = rng.choice([0, 1, 17, 333, 1000, 5000])
        if rng.random() < 0.5:
            assert reader.read(size) == expected[pos : pos + size]
        else:
            buffer = bytearray(size)
            n = reader.readinto(buffer)
            assert bytes(buffer[:n]) == expected[pos : pos + size]
        assert reader.tell() == min(pos + size, max(pos, len(expected)))
    reader.seek(-10, io.SEEK_END)
    assert reader.read() == expected[-10:]
    with pytest.raises(ValueError):
        reader.seek(-1)


def test_a_completed_upload_is_its_parts_pieces_read_back_every_way() -> None:
    store = MemoryStorage()
    rng = random.Random(3)
    # Each part sent in pieces, as a gateway passes on what it received: large ones
    # (kept as they are) and a few small ones (merged).
    sent = [
        [os.urandom(rng.choice([SMALL_PIECE, 3 * SMALL_PIECE + 1, 100, 7])) for _ in range(4)]
        for _ in range(5)
    ]
    parts = [b"".join(pieces) for pieces in sent]
    data = b"".join(parts)
    upload = store.create_multipart("big")
    done = [
        store.write_multipart(upload, n, iter(pieces)) for n, pieces in enumerate(sent, start=1)
    ]
    store.complete_multipart(upload, done)
    held = store._objects[store._abs_path("read", "big")].data  # white box: nothing was joined
    large = [p for pieces in sent for p in pieces if len(p) >= SMALL_PIECE]
    assert len(large) >= 5 and all(any(h is p for h in held.pieces) for p in large)
    assert store.read("big") == data
    assert store.stat("big").content_length == len(data)
    for _ in range(100):
        a = rng.randrange(len(data))
        n = rng.randrange(1, 100_000)
        assert store.read("big", offset=a, size=n) == data[a : a + n]
        with store.open_reader("big", offset=a, size=n) as reader:
            assert reader.read() == data[a : a + n]
    with store.open_reader("big") as reader:
        got = bytearray()
        while chunk := reader.read(rng.randrange(1, 50_000)):
            got += chunk
    assert bytes(got) == data
    store.copy("big", "copy")
    assert store.read("copy") == data


def test_appends_add_pieces_and_small_ones_are_merged() -> None:
    store = MemoryStorage()
    data = b""
    sizes = [10] * 3000 + [SMALL_PIECE + 5] * 3 + [100] * 2000
    for size in sizes:
        piece = os.urandom(size)
        store.append("log", piece)
        data += piece
    pieces = store._objects[store._abs_path("read", "log")].data.pieces
    # Large pieces kept as they came; the small ones merged into few.
    assert sum(1 for p in pieces if len(p) == SMALL_PIECE + 5) == 3
    assert len(pieces) <= 3 + 2 * (len(data) // SMALL_PIECE + 1)
    assert store.read("log") == data
    assert store.read("log", offset=1000, size=200_000) == data[1000:201_000]
    with store.open_reader("log", offset=5) as reader:
        assert reader.read() == data[5:]


def test_coalesce_keeps_large_pieces_and_merges_runs_of_small_ones() -> None:
    big = b"B" * SMALL_PIECE
    assert coalesce([b"a", b"b", big, b"c"]) == (b"ab", big, b"c")
    assert coalesce([b"d"], held=(big, b"c")) == (big, b"cd")
    assert coalesce([], held=(b"x",)) == (b"x",)
    small = [bytes([i % 256]) * 1000 for i in range(200)]
    merged = coalesce(small)
    assert b"".join(merged) == b"".join(small)
    assert all(len(p) >= SMALL_PIECE for p in merged[:-1])


def test_a_reader_over_pieces_reads_lines_seeks_like_bytesio_and_refuses_after_close() -> None:
    store = MemoryStorage()
    lines = [f"line {i}\n".encode() for i in range(20_000)]
    data = b"".join(lines)
    upload = store.create_multipart("text")
    half = len(data) // 2
    done = [
        store.write_multipart(upload, 1, data[:half]),
        store.write_multipart(upload, 2, data[half:]),
    ]
    store.complete_multipart(upload, done)
    with store.open_reader("text") as reader:
        assert list(reader) == data.splitlines(keepends=True)
        reader.seek(10)
        assert reader.seek(-50, 1) == 0  # as io.BytesIO: stops at the start
        with pytest.raises(ValueError):
            reader.seek(-1)
        assert reader.read(7) == data[:7]
    with pytest.raises(ValueError):
        reader.read(1)
