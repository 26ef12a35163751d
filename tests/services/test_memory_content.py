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
from storager.services.memory._content import Content


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
    assert isinstance(reader, io.RawIOBase) and reader.seekable()
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
    parts = [os.urandom(rng.randrange(1, 70_000)) for _ in range(5)]
    data = b"".join(parts)
    upload = store.create_multipart("big")
    done = [
        # Each part sent in pieces, as a gateway passes on what it received.
        store.write_multipart(upload, n, iter(_pieces(rng, part)) if len(part) > 20 else part)
        for n, part in enumerate(parts, start=1)
    ]
    store.complete_multipart(upload, done)
    held = store._objects[store._abs_path("read", "big")].data  # white box: nothing was joined
    assert len(held.pieces) > len(parts)
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


def test_appends_add_pieces_without_copying_what_is_held() -> None:
    store = MemoryStorage()
    data = b""
    for i in range(50):
        piece = os.urandom(i * 7 + 1)
        store.append("log", piece)
        data += piece
    assert len(store._objects[store._abs_path("read", "log")].data.pieces) == 50
    assert store.read("log") == data
    assert store.read("log", offset=1000, size=2000) == data[1000:3000]
    with store.open_reader("log", offset=5) as reader:
        assert reader.read() == data[5:]
