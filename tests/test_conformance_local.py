"""The conformance suite on the local services: fs under a temporary root, and memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storager import Storager
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import StoragerSuite


@pytest.fixture(scope="module")
def fs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fs-root")


class TestFs(StoragerSuite):
    @pytest.fixture
    def storager_factory(self, fs_root: Path) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return FsStorage(root=str(fs_root), work_dir=work_dir, **pairs)

        return factory


class TestMemory(StoragerSuite):
    @pytest.fixture
    def storager_factory(self) -> Callable[..., Storager]:
        def factory(work_dir: str, **pairs: Any) -> Storager:
            return MemoryStorage(work_dir=work_dir, **pairs)

        return factory


# -- the pytest plugin: ``pytest --storager-url URL`` -----------------------------------

pytest_plugins = ["pytester"]


def test_plugin_runs_suite_against_memory_url(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--storager-url", "memory://", "-p", "no:cacheprovider", "-v", "-m", "not slow"
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes["passed"] >= 60
    assert "failed" not in outcomes
    result.stdout.fnmatch_lines(["*TestStoragerUrl::test_write_overwrites_existing_object PASSED*"])


def test_plugin_runs_suite_against_fs_url_with_pairs(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    root = tmp_path / "plugin-root"
    result = pytester.runpytest_subprocess(
        f"--storager-url=fs://{root}?work_dir=/base/",
        "--storager-pair",
        "loose_pairs=false",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
    )
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert outcomes["passed"] >= 50
    assert "failed" not in outcomes
    # Every test's work_dir sat under the URL's own, and was cleaned up afterwards.
    assert sorted(p.name for p in root.iterdir()) == ["base"]
    assert list((root / "base").iterdir()) == []


def test_plugin_rejects_unknown_pair(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--storager-url", "memory://", "--storager-pair", "no_such=1", "-p", "no:cacheprovider"
    )
    assert result.ret != 0
    assert "no_such" in result.stdout.str() + result.stderr.str()


def test_plugin_leaves_normal_runs_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
