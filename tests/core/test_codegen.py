"""The generator: --check on the repo, refusing undocumented definitions, stale files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.__main__ import main as codegen_main
from codegen.model import ROOT, DefinitionError, load_model


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of everything codegen reads and writes; the real tree is never touched."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "definitions", root / "definitions", ignore=ignore)
    shutil.copytree(ROOT / "services", root / "services", ignore=ignore)
    (root / "storager").mkdir()
    shutil.copy2(ROOT / "storager" / "_capability.py", root / "storager" / "_capability.py")
    (root / "docs").mkdir()
    shutil.copy2(ROOT / "docs" / "capabilities.md", root / "docs" / "capabilities.md")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def test_codegen_check_passes_on_the_repo() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codegen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_copied_tree_loads_like_the_repo(tree: Path) -> None:
    copied, real = load_model(tree), load_model()
    assert [s.name for s in copied.services] == [s.name for s in real.services]
    assert copied.pairs == real.pairs
    assert all(s.folder.is_relative_to(tree) for s in copied.services)


def test_a_pair_without_a_description_is_refused(tree: Path) -> None:
    append(tree / "definitions" / "pairs.toml", '\n[undocumented]\nscope = "op"\ntype = "str"\n')
    with pytest.raises(DefinitionError, match="pair 'undocumented': a description is required"):
        load_model(tree)


def test_a_pair_with_a_blank_description_is_refused(tree: Path) -> None:
    append(
        tree / "definitions" / "pairs.toml",
        '\n[blank]\nscope = "op"\ntype = "str"\ndescription = "   "\n',
    )
    with pytest.raises(DefinitionError, match="pair 'blank': a description is required"):
        load_model(tree)


def test_a_service_pair_without_a_description_is_refused(tree: Path) -> None:
    append(
        tree / "services" / "memory" / "service.toml",
        '\n[pairs.shiny]\nscope = "init"\ntype = "bool"\n',
    )
    with pytest.raises(DefinitionError, match=r"memory/service\.toml: pair 'shiny'"):
        load_model(tree)


def test_an_operation_without_a_description_is_refused(tree: Path) -> None:
    append(
        tree / "definitions" / "operations.toml",
        '\n[frobnicate]\nprotocol = "Storager"\nreturns = "None"\n',
    )
    with pytest.raises(DefinitionError, match="operation 'frobnicate': a description is required"):
        load_model(tree)


def test_a_feature_without_a_description_is_refused(tree: Path) -> None:
    append(tree / "definitions" / "features.toml", '\n[sparkly]\ntype = "bool"\n')
    with pytest.raises(DefinitionError, match="feature 'sparkly': a description is required"):
        load_model(tree)


def test_the_cli_reports_a_missing_description_and_exits_2(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    append(tree / "definitions" / "features.toml", '\n[sparkly]\ntype = "bool"\n')
    assert codegen_main(["--check", "--root", str(tree)]) == 2
    assert "a description is required" in capsys.readouterr().err


def test_a_stale_generated_file_fails_check_and_regenerating_fixes_it(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generated = tree / "services" / "fs" / "_generated.py"
    real_before = (ROOT / "services" / "fs" / "_generated.py").read_bytes()
    append(generated, "# edited by hand\n")
    assert codegen_main(["--check", "--root", str(tree)]) == 1
    err = capsys.readouterr().err
    assert "services/fs/_generated.py is stale" in err
    assert generated.read_text().endswith("# edited by hand\n")  # --check writes nothing
    assert codegen_main(["--root", str(tree)]) == 0
    assert codegen_main(["--check", "--root", str(tree)]) == 0
    assert (ROOT / "services" / "fs" / "_generated.py").read_bytes() == real_before


def test_a_changed_definition_makes_the_generated_files_stale(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tree / "services" / "fs" / "service.toml"
    toml.write_text(toml.read_text().replace("dir_explicit = true", "dir_explicit = false"))
    assert codegen_main(["--check", "--root", str(tree)]) == 1
    assert "services/fs/_generated.py is stale" in capsys.readouterr().err
