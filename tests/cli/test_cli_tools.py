"""du, doctor and bench through main(argv), on local fs trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, main
from tests.cli.test_cli_transfer import last_json, make_tree

# -- du, doctor, bench ---------------------------------------------------------------------


def test_du_counts_objects_and_bytes_per_top_level_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "src", count=9)
    assert main(["du", "--json", str(tmp_path / "src")]) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    assert report["objects"] == len(files)
    assert report["bytes"] == sum(len(d) for d in files.values())
    entries = {e["path"]: e for e in report["entries"]}  # type: ignore[union-attr]
    assert entries["d0/"]["objects"] == 3
    assert entries["top.txt"] == {"path": "top.txt", "objects": 1, "bytes": 4}
    assert main(["du", str(tmp_path / "src")]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[-1].split()[-2:] == [str(len(files)), "total"]


def test_doctor_on_a_working_store_passes_its_round_trip_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--json", str(tmp_path) + "/"]) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    assert report["service"] == "fs"
    assert report["credential"] == "none needed"
    assert report["round_trip"]["ok"] is True  # type: ignore[index]
    assert set(report["round_trip"]["ms"]) == {"write", "stat", "read", "list", "delete"}  # type: ignore[index]
    assert report["capability"]["protocols"]["Copier"] is True  # type: ignore[index]
    assert list(tmp_path.iterdir()) == []


def test_doctor_names_the_failing_step_and_a_fix_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_bytes(b"f")
    assert main(["doctor", str(tmp_path / "file" / "sub") + "/"]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "write   FAILED" in captured.out
    assert "likely fix:" in captured.out
    assert "verdict: FAILED at write" in captured.out
    assert captured.err.startswith("storager: doctor write: round trip failed")


def test_bench_reports_ops_and_mb_per_second_and_cleans_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--json", "--count", "20", "--size", "1KiB", "--large", "2MiB"]
    assert main([*argv, str(tmp_path) + "/"]) == EXIT_OK
    report = last_json(capsys.readouterr().out)
    assert (report["count"], report["size"], report["large_size"]) == (20, 1024, 2 << 20)
    for key in ("put_ops", "get_ops", "head_ops", "large_write_mb_s", "large_read_mb_s"):
        assert isinstance(report[key], float) and report[key] > 0, key
    assert list(tmp_path.iterdir()) == []
