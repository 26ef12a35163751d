"""cp, mv and sync refuse two arguments that name the same object through two stores.

``/d/f`` and ``fs:///d/f?work_dir=/`` open two store instances on one file; a
copy-then-delete between them would stream the file onto itself, then delete it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import storager
from storager._errors import InvalidArgumentError
from storager.cli import EXIT_OK, EXIT_USAGE, main
from storager.cli._transfer import Transfer, TransferEngine


def via_url(path: Path, *, directory: bool = False) -> str:
    """Name ``path`` through a second fs store (a connection string with a work_dir)."""
    return f"fs://{path}{'/' if directory else ''}?work_dir=/"


def make_tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.txt": b"bravo", "sub/deep/c.txt": b"charlie"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", ["mv", "cp"])
def test_one_object_onto_itself_through_another_store_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"precious")
    assert main([command, str(target), via_url(target)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "same object" in err and str(target) in err and "work_dir" in err
    assert target.read_bytes() == b"precious"


def test_mv_r_of_a_tree_onto_itself_through_another_store_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_tree(tmp_path / "d")
    code = main(["mv", "-r", f"{tmp_path / 'd'}/", via_url(tmp_path / "d", directory=True)])
    assert code == EXIT_USAGE
    assert "into itself" in capsys.readouterr().err
    assert read_tree(tmp_path / "d") == files


@pytest.mark.parametrize(
    ("src", "dst"),
    [("d/", "d/sub/"), ("d/sub/", "d/")],
    ids=["into-its-own-subtree", "into-the-tree-holding-it"],
)
def test_mv_r_between_nested_trees_through_another_store_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], src: str, dst: str
) -> None:
    files = make_tree(tmp_path / "d")
    code = main(
        ["mv", "-r", str(tmp_path / src), via_url(tmp_path / dst.rstrip("/"), directory=True)]
    )
    assert code == EXIT_USAGE
    assert str(tmp_path / src).rstrip("/") in capsys.readouterr().err
    assert read_tree(tmp_path / "d") == files


def test_mv_through_a_symlinked_directory_onto_the_real_file_is_refused(
    tmp_path: Path,
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"precious")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert (
        main(["mv", str(tmp_path / "real" / "f"), via_url(tmp_path / "link" / "f")]) == EXIT_USAGE
    )
    assert (tmp_path / "real" / "f").read_bytes() == b"precious"


def test_mv_onto_a_config_tree_rooted_at_the_same_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "f").write_bytes(b"precious")
    config = tmp_path / "tree.toml"
    config.write_text(f'[trees.local]\nkind = "fs"\nroot = "{tmp_path / "disk"}"\n')
    code = main(["mv", "--config", str(config), str(tmp_path / "disk" / "f"), "local:f"])
    assert code == EXIT_USAGE
    assert (tmp_path / "disk" / "f").read_bytes() == b"precious"


def test_sync_between_overlapping_trees_through_another_store_is_refused(
    tmp_path: Path,
) -> None:
    files = make_tree(tmp_path / "d")
    code = main(
        ["sync", "--delete", f"{tmp_path / 'd'}/", via_url(tmp_path / "d" / "sub", directory=True)]
    )
    assert code == EXIT_USAGE
    assert read_tree(tmp_path / "d") == files


def test_mv_to_another_name_through_another_store_still_moves(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    assert main(["mv", str(tmp_path / "f"), via_url(tmp_path / "g")]) == EXIT_OK
    assert not (tmp_path / "f").exists()
    assert (tmp_path / "g").read_bytes() == b"data"


def test_the_engine_does_not_copy_and_delete_an_object_onto_itself(tmp_path: Path) -> None:
    """The backstop: an engine asked to move an object onto itself fails that object."""
    (tmp_path / "f").write_bytes(b"precious")
    with (
        storager.open(f"fs://{tmp_path}") as src,
        storager.open(f"fs://{tmp_path}?work_dir=/") as dst,
    ):
        engine = TransferEngine(src, dst, jobs=1, move=True)
        with pytest.raises(InvalidArgumentError, match="same object"):
            engine.one(Transfer("/f", "/f", 8, "f"))
    assert (tmp_path / "f").read_bytes() == b"precious"
