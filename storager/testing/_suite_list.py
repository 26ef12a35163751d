"""The conformance tests of list: dir and prefix modes, order, pages."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from storager._protocols import Storager
from storager.testing._gating import covers
from storager.testing._suite_base import _files, _paths


class ListTests:
    """The contracts of ``list``; a mixin of ``StoragerSuite``."""

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
