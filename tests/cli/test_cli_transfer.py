"""cp -r -j and mv through main(argv), on local fs trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


def make_tree(root: Path, count: int = 30) -> dict[str, bytes]:
    files = {f"d{i % 3}/f{i:03d}.bin": os.urandom(100 + i) for i in range(count)}
    files["top.txt"] = b"top\n"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def streamed(path: Path) -> str:
    """A URL of a second fs store (a distinct query), so copies stream instead of fs copy."""
    return f"fs://{path}/?work_dir=/"


def last_json(out: str) -> dict[str, object]:
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- cp -r -j ------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "8"])
def test_cp_r_with_jobs_copies_every_object_and_json_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    files = make_tree(tmp_path / "src")
    argv = ["cp", "-r", "-j", jobs, "--json", str(tmp_path / "src"), streamed(tmp_path / "dst")]
    assert main(argv) == EXIT_OK
    assert read_tree(tmp_path / "dst") == files
    summary = last_json(capsys.readouterr().out)
    assert summary["copied"] == len(files)
    assert summary["copied_bytes"] == sum(len(d) for d in files.values())
    assert summary["failed"] == 0 and summary["failures"] == []
    assert isinstance(summary["seconds"], float)


def test_cp_r_partial_failure_lists_each_failed_object_does_the_rest_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src")
    (tmp_path / "dst" / "top.txt").mkdir(parents=True)  # a directory where a file must go
    (tmp_path / "dst" / "top.txt" / "keep").write_bytes(b"k")
    argv = ["cp", "-r", "-j", "4", "--json", str(tmp_path / "src"), streamed(tmp_path / "dst")]
    assert main(argv) == EXIT_FAILED
    captured = capsys.readouterr()
    summary = last_json(captured.out)
    assert summary["failed"] == 1
    assert summary["copied"] == len(files) - 1
    assert [f["path"] for f in summary["failures"]] == ["top.txt"]  # type: ignore[union-attr]
    err = captured.err.splitlines()
    assert any(line.startswith("storager: top.txt: ") for line in err)
    assert err[-1] == f"storager: cp: 1 of {len(files)} objects failed"
    copied = read_tree(tmp_path / "dst")
    assert all(copied[rel] == data for rel, data in files.items() if rel != "top.txt")


def test_cp_jobs_out_of_range_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cp", "-r", "-j", "0", str(tmp_path), str(tmp_path / "x")]) == EXIT_USAGE
    assert "-j" in capsys.readouterr().err


def test_cp_progress_off_a_terminal_prints_one_line_per_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=5)
    assert main(["cp", "-r", "--progress", str(tmp_path / "src"), str(tmp_path / "d")]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(files)
    assert "top.txt: 4/4 bytes (100%)" in lines


# -- mv ------------------------------------------------------------------------------------


def test_mv_moves_one_object_and_the_source_is_gone(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    assert main(["mv", str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]) == EXIT_OK
    assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "b.txt").read_bytes() == b"alpha"


def test_mv_across_stores_copies_then_deletes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "into").mkdir()
    assert main(["mv", str(tmp_path / "a.txt"), streamed(tmp_path / "into")]) == EXIT_OK
    assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "into" / "a.txt").read_bytes() == b"alpha"


def test_mv_r_moves_a_tree_and_removes_the_emptied_source(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", count=6)
    assert main(["mv", "-r", str(tmp_path / "src"), str(tmp_path / "dst")]) == EXIT_OK
    assert read_tree(tmp_path / "dst") == files
    assert not (tmp_path / "src").exists()


def test_mv_of_a_missing_object_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mv", str(tmp_path / "nope"), str(tmp_path / "b")]) == EXIT_FAILED
    assert "not found" in capsys.readouterr().err


def test_mv_of_a_directory_without_r_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path / "src", count=2)
    assert main(["mv", str(tmp_path / "src"), str(tmp_path / "dst")]) == EXIT_FAILED
    assert "use -r" in capsys.readouterr().err
    assert (tmp_path / "src" / "top.txt").exists()
