"""memory behaviours: per-instance state, thread safety, presigned URLs that expire."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from storager import NotFoundError
from storager.services.memory import MemoryStorage


def test_two_memory_stores_do_not_share_state() -> None:
    first, second = MemoryStorage(), MemoryStorage()
    first.write("a.txt", b"first")
    second.write("b.txt", b"second")
    assert [o.path for o in first.list()] == ["a.txt"]
    assert [o.path for o in second.list()] == ["b.txt"]
    with pytest.raises(NotFoundError):
        second.read("a.txt")


def test_concurrent_writes_and_lists_lose_nothing_and_never_fail() -> None:
    store = MemoryStorage()
    writers, per_writer = 8, 200
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(n: int) -> None:
        try:
            for i in range(per_writer):
                store.write(f"w{n}/{i:04d}", f"{n}-{i}".encode())
                store.write("shared", bytes([n]) * 1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def lister() -> None:
        try:
            while not stop.is_set():
                paths = [o.path for o in store.list("", list_mode="prefix")]
                assert len(paths) == len(set(paths))
                shared = store.read("shared") if "shared" in paths else bytes(1000)
                assert len(set(shared)) == 1 and len(shared) == 1000
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    listing = threading.Thread(target=lister)
    listing.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    listing.join()
    assert errors == []
    paths = [o.path for o in store.list("", list_mode="prefix")]
    assert len(paths) == writers * per_writer + 1
    assert store.read("w3/0199") == b"3-199"


def test_presigned_urls_work_until_they_expire() -> None:
    with MemoryStorage() as store:
        store.write("a.txt", b"signed")
        url = store.presign_read("a.txt", expire=1)
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"signed"
        time.sleep(1.1)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=5)
        assert info.value.code == 403
