"""storager --config tree.toml: NAME:path names an object in a store tree, on fs tmp dirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


@pytest.fixture
def disks(tmp_path: Path) -> tuple[Path, Path]:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    return one, two


@pytest.fixture
def config(tmp_path: Path, disks: tuple[Path, Path]) -> Path:
    one, two = disks
    path = tmp_path / "tree.toml"
    path.write_text(
        f"""
        [trees.photos]
        kind = "mirror"
        targets.one = "fs://{one}?work_dir=/photos/"
        targets.two = {{ kind = "fs", root = "{two}" }}

        [trees.ro]
        kind = "readonly"
        inner = {{ tree = "photos" }}

        [trees.scratch]
        kind = "fs"
        root = "${{SCRATCH_ROOT}}"
        """
    )
    return path


def test_cp_to_a_tree_writes_through_every_node_relative_to_the_tree(
    tmp_path: Path, config: Path, disks: tuple[Path, Path]
) -> None:
    src = tmp_path / "cat.jpg"
    src.write_bytes(b"meow")
    assert main(["cp", "--config", str(config), str(src), "photos:2024/cat.jpg"]) == EXIT_OK
    one, two = disks
    assert (one / "photos" / "2024" / "cat.jpg").read_bytes() == b"meow"
    assert (two / "2024" / "cat.jpg").read_bytes() == b"meow"


def test_ls_stat_cat_and_rm_take_tree_arguments(
    config: Path, disks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = disks
    for root in (one / "photos", two):
        (root / "2024").mkdir(parents=True)
        (root / "2024" / "a.jpg").write_bytes(b"aaa")
        (root / "top.txt").write_bytes(b"t")
    cfg = ["--config", str(config)]
    assert main(["ls", *cfg, "photos:"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["2024/", "top.txt"]
    assert main(["ls", "-r", *cfg, "photos:/2024/"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["a.jpg"]
    assert main(["stat", *cfg, "photos:2024/a.jpg"]) == EXIT_OK
    assert "content_length: 3" in capsys.readouterr().out
    assert main(["cat", *cfg, "--offset", "1", "ro:2024/a.jpg"]) == EXIT_OK
    assert capsys.readouterr().out == "aa"
    assert main(["rm", *cfg, "photos:top.txt"]) == EXIT_OK
    assert not (one / "photos" / "top.txt").exists() and not (two / "top.txt").exists()


def test_a_read_only_tree_refuses_changes_with_exit_1(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"x")
    assert main(["cp", "--config", str(config), str(src), "ro:x"]) == EXIT_FAILED
    assert "read-only" in capsys.readouterr().err


def test_cp_r_between_trees_and_urls(
    tmp_path: Path,
    config: Path,
    disks: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("SCRATCH_ROOT", str(scratch))
    (scratch / "in" / "d").mkdir(parents=True)
    (scratch / "in" / "d" / "f.txt").write_bytes(b"f")
    cfg = ["--config", str(config)]
    assert main(["cp", "-r", *cfg, "scratch:in/", "photos:copied/"]) == EXIT_OK
    assert (disks[1] / "copied" / "d" / "f.txt").read_bytes() == b"f"
    # a URL argument still works next to a tree argument
    out = tmp_path / "out"
    assert main(["cp", "-r", *cfg, "photos:copied/", f"fs://{out}/"]) == EXIT_OK
    assert (out / "d" / "f.txt").read_bytes() == b"f"


def test_cp_r_of_a_tree_into_itself_is_refused(
    config: Path, disks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for root in (disks[0] / "photos", disks[1]):
        (root / "d").mkdir(parents=True)
        (root / "d" / "f").write_bytes(b"f")
    code = main(["cp", "-r", "--config", str(config), "photos:d/", "photos:d/sub/"])
    assert code == EXIT_USAGE
    assert "into itself" in capsys.readouterr().err


def test_an_unknown_tree_is_a_usage_error_listing_the_trees(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", "--config", str(config), "fotos:"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("storager: open fotos:: no tree named 'fotos' in ")
    assert "(trees: photos, ro, scratch)" in err and "./fotos:" in err


def test_an_unset_variable_is_a_usage_error_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCRATCH_ROOT", raising=False)
    assert main(["ls", "--config", str(config), "scratch:"]) == EXIT_USAGE
    assert "trees.scratch.root: environment variable SCRATCH_ROOT is not set" in (
        capsys.readouterr().err
    )


def test_a_bad_tree_file_is_a_usage_error_naming_file_and_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[trees.t]\nkind = "mirror"\ntargets.a = { kind = "nope" }\n')
    assert main(["ls", "--config", str(bad), "t:"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"load {bad}: trees.t.targets.a.kind: unknown kind 'nope'" in err
    assert err.count("\n") == 1


def test_a_missing_tree_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--config", str(tmp_path / "none.toml"), "t:"]) == EXIT_FAILED
    assert "none.toml" in capsys.readouterr().err


def test_without_config_or_with_dot_slash_name_colon_is_a_local_path(
    tmp_path: Path,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos:x").write_bytes(b"local")
    assert main(["cat", "photos:x"]) == EXIT_OK
    assert main(["cat", "--config", str(config), "./photos:x"]) == EXIT_OK
    assert capsys.readouterr().out == "locallocal"


def test_config_works_from_the_installed_command(tmp_path: Path, config: Path) -> None:
    scratch = tmp_path / "s"
    scratch.mkdir()
    (scratch / "a.txt").write_bytes(b"hello")
    done = subprocess.run(
        [sys.executable, "-m", "storager", "cat", "--config", str(config), "scratch:a.txt"],
        capture_output=True,
        timeout=60,
        check=False,
        env={"SCRATCH_ROOT": str(scratch), "PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout) == (0, b"hello"), done.stderr
