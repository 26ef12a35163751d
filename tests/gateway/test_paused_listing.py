"""Page N+1 continues the listing page N paused instead of walking from the start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storager._object import Object
from storager.gateway._bucket import Bucket
from storager.gateway._limiter import ThreadLimiter
from storager.gateway._listing import collect_page
from storager.services.memory import MemoryStorage


class CountingStore(MemoryStorage):
    """A memory store that counts the entries its listings hand out."""

    handed_out = 0

    def list(self, path: str = "", **pairs: Any) -> Iterator[Object]:
        for obj in super().list(path, **pairs):
            CountingStore.handed_out += 1
            yield obj


def test_pages_are_one_pass_and_the_same_as_a_fresh_walk() -> None:
    store = CountingStore()
    keys = [f"k/{i:04d}" for i in range(2500)]
    for key in keys:
        store.write(key, b"x")
    bucket = Bucket("b", store, ThreadLimiter(1))
    CountingStore.handed_out = 0
    seen: list[str] = []
    after = ""
    while True:
        items, more = collect_page(bucket, "k/", "", after, 1000)
        seen += [item.key for item in items]
        if not more:
            break
        after = items[-1].key
    assert seen == keys
    assert CountingStore.handed_out == 2500  # one pass, not 1,000 + 2,000 + 2,500
    fresh = Bucket("b", store, ThreadLimiter(1))  # no paused listing: walks again
    items, more = collect_page(fresh, "k/", "", keys[999], 1000)
    assert [item.key for item in items] == keys[1000:2000] and more


def test_delimiter_pages_resume_after_a_common_prefix() -> None:
    store = MemoryStorage()
    for name in ["a/1", "a/2", "b", "c/1", "d"]:
        store.write(name, b"x")
    bucket = Bucket("b", store, ThreadLimiter(1))
    seen: list[str] = []
    after = ""
    while True:
        items, more = collect_page(bucket, "", "/", after, 1)
        seen += [item.key for item in items]
        if not more:
            break
        after = items[-1].key
    assert seen == ["a/", "b", "c/", "d"]
