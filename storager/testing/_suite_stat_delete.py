"""The conformance tests of stat and delete."""

from __future__ import annotations

import pytest

from storager._errors import NotFoundError
from storager._protocols import Storager
from storager.testing._gating import covers
from storager.testing._suite_base import _paths, random_content


class StatDeleteTests:
    """The contracts of ``stat`` and ``delete``; a mixin of ``StoragerSuite``."""

    @covers("stat")
    def test_stat_reports_length_just_written(self, store: Storager) -> None:
        for length in (1, 4096, 70_001):
            obj = store.write("stat.bin", random_content(length))
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
