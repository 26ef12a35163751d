"""sync through main(argv), on local fs trees: what it copies, skips, deletes and prints."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tests.cli.test_cli_transfer import last_json, make_tree, read_tree, streamed

# -- sync ----------------------------------------------------------------------------------


def sync(tmp_path: Path, *options: str) -> list[str]:
    return ["sync", *options, str(tmp_path / "src"), streamed(tmp_path / "dst")]


def test_sync_copies_everything_then_a_second_run_transfers_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src")
    assert main(sync(tmp_path, "--json")) == EXIT_OK
    assert last_json(capsys.readouterr().out)["copied"] == len(files)
    assert read_tree(tmp_path / "dst") == files
    assert main(sync(tmp_path)) == EXIT_OK
    assert capsys.readouterr().out.startswith(f"nothing to transfer: {len(files)} objects")
    assert main(sync(tmp_path, "--json")) == EXIT_OK
    summary = last_json(capsys.readouterr().out)
    assert (summary["copied"], summary["skipped"]) == (0, len(files))


def test_sync_copies_what_changed_size_or_is_newer(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    assert main(sync(tmp_path)) == EXIT_OK
    (tmp_path / "src" / "top.txt").write_bytes(b"longer now\n")
    same_size = tmp_path / "src" / "d0" / "f000.bin"
    same_size.write_bytes(b"x" * 100)
    future = time.time() + 5
    os.utime(same_size, (future, future))
    assert main(sync(tmp_path)) == EXIT_OK
    assert (tmp_path / "dst" / "top.txt").read_bytes() == b"longer now\n"
    assert (tmp_path / "dst" / "d0" / "f000.bin").read_bytes() == b"x" * 100


def test_sync_checksum_finds_equal_size_changes_that_mtimes_miss(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    assert main(sync(tmp_path)) == EXIT_OK
    changed = tmp_path / "src" / "d1" / "f001.bin"
    changed.write_bytes(b"y" * 101)
    os.utime(changed, (0, 0))  # older than the copy: mtimes say "up to date"
    assert main(sync(tmp_path)) == EXIT_OK
    assert (tmp_path / "dst" / "d1" / "f001.bin").read_bytes() != b"y" * 101
    assert main(sync(tmp_path, "--checksum")) == EXIT_OK
    assert (tmp_path / "dst" / "d1" / "f001.bin").read_bytes() == b"y" * 101


def test_sync_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=3)
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "extra.txt").write_bytes(b"e")
    assert main(sync(tmp_path, "--dry-run", "--delete")) == EXIT_OK
    out = capsys.readouterr().out
    assert "copy    top.txt  (new, 4 B)" in out
    assert "delete  extra.txt" in out
    assert read_tree(tmp_path / "dst") == {"extra.txt": b"e"}
    assert main(sync(tmp_path, "--dry-run", "--delete", "--json")) == EXIT_OK
    plan = last_json(capsys.readouterr().out)
    assert plan["dry_run"] is True
    assert sorted(c["path"] for c in plan["copy"]) == sorted(files)  # type: ignore[union-attr]
    assert plan["delete"] == ["extra.txt"]
    assert read_tree(tmp_path / "dst") == {"extra.txt": b"e"}


def test_sync_delete_removes_what_the_source_lacks_but_not_excluded_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=3)
    (tmp_path / "dst" / "keep").mkdir(parents=True)
    (tmp_path / "dst" / "extra.txt").write_bytes(b"e")
    (tmp_path / "dst" / "keep" / "local.log").write_bytes(b"log")
    assert main(sync(tmp_path, "--delete", "--exclude", "*.log", "--json")) == EXIT_OK
    assert last_json(capsys.readouterr().out)["deleted"] == 1
    assert read_tree(tmp_path / "dst") == {**files, "keep/local.log": b"log"}


def test_sync_exclude_leaves_matching_source_objects_uncopied(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src", count=6)
    assert main(sync(tmp_path, "--exclude", "d1/*", "--exclude", "top.*")) == EXIT_OK
    expected = {r: d for r, d in files.items() if not r.startswith("d1/") and r != "top.txt"}
    assert read_tree(tmp_path / "dst") == expected


def test_sync_delete_is_skipped_when_a_copy_fails_and_a_rerun_finishes_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path / "src", count=3)
    (tmp_path / "dst" / "top.txt").mkdir(parents=True)  # blocks one copy
    (tmp_path / "dst" / "top.txt" / "x").write_bytes(b"x")
    (tmp_path / "dst" / "extra.txt").write_bytes(b"e")
    assert main(sync(tmp_path, "--delete")) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "storager: top.txt: " in err
    assert "--delete skipped" in err
    assert (tmp_path / "dst" / "extra.txt").read_bytes() == b"e"
    assert (tmp_path / "dst" / "d0" / "f000.bin").exists()  # the rest was copied
    # Run again once the cause is gone: only what is missing moves, then the delete.
    (tmp_path / "dst" / "top.txt" / "x").unlink()
    (tmp_path / "dst" / "top.txt").rmdir()
    assert main(sync(tmp_path, "--delete", "--json")) == EXIT_OK
    summary = last_json(capsys.readouterr().out)
    assert (summary["copied"], summary["skipped"], summary["deleted"]) == (1, 3, 1)
    assert not (tmp_path / "dst" / "extra.txt").exists()


def test_sync_of_overlapping_directories_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path / "src", count=1)
    assert main(["sync", str(tmp_path / "src"), str(tmp_path / "src" / "in")]) == EXIT_USAGE
    assert "overlap" in capsys.readouterr().err
