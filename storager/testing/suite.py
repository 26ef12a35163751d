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

The tests live in one mixin per theme, in ``storager/testing/_suite_*.py``:
write, read (with open_reader), stat and delete, list, names and paths (with
errors), directory names, pairs, streaming, and the capability protocols.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pytest

from storager._protocols import Storager
from storager.testing._gating import covers, missing_coverage
from storager.testing._suite_base import Factory, MiB
from storager.testing._suite_capabilities import CapabilityTests
from storager.testing._suite_dir_names import DirectoryNameTests, ExclusiveNameTests
from storager.testing._suite_list import ListTests
from storager.testing._suite_names_paths import NamesPathsTests
from storager.testing._suite_pairs import PairTests
from storager.testing._suite_read import ReadTests
from storager.testing._suite_stat_delete import StatDeleteTests
from storager.testing._suite_streaming import StreamingTests
from storager.testing._suite_write import WriteTests

__all__ = ["NameSuite", "StoragerSuite", "covers"]


class SuiteFixtures:
    """The fixtures every suite class shares: override ``storager_factory``."""

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


# pytest collects inherited tests in reverse MRO order, so the mixins are listed in
# reverse: the tests run write, read, stat and delete, list, ..., capabilities.
class StoragerSuite(
    CapabilityTests,
    StreamingTests,
    PairTests,
    ExclusiveNameTests,
    DirectoryNameTests,
    NamesPathsTests,
    ListTests,
    StatDeleteTests,
    ReadTests,
    WriteTests,
    SuiteFixtures,
):
    """The conformance suite; subclass it and override ``storager_factory``.

    Class attributes a subclass may change:
        write_memory_limit: The traced peak a 64 MiB streaming write may reach, in
            bytes; ``None`` skips the check. The memory service stores objects in
            process memory, so the check is skipped there whatever this says.
    """

    write_memory_limit: int | None = 32 * MiB

    # -- the suite itself -------------------------------------------------------------

    def test_every_declared_capability_has_tests(self, store: Storager) -> None:
        missing = missing_coverage(store)
        assert not missing, f"declared but checked by no test: {', '.join(missing)}"


class NameSuite(ExclusiveNameTests, SuiteFixtures):
    """Only the contracts of names a file and a directory may not share.

    For a store whose whole suite runs elsewhere without the ``exclusive_names`` pair:
    subclass it with a ``storager_factory`` that opens the store with the pair on.
    """


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
