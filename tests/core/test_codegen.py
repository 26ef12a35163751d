"""The generator: --check on the repo, refusing undocumented definitions, stale files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.__main__ import main as codegen_main
from codegen.model import ROOT, DefinitionError, load_model
from codegen.render import render_header_pairs, render_service
from codegen.unasync import TWINS


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of everything codegen reads and writes; the real tree is never touched."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "definitions", root / "definitions", ignore=ignore)
    shutil.copytree(ROOT / "services", root / "services", ignore=ignore)
    (root / "storager").mkdir()
    for generated in ("_capability.py", "_header_pairs.py", "_async_protocols.py"):
        shutil.copy2(ROOT / "storager" / generated, root / "storager" / generated)
    (root / "storager" / "aio").mkdir()
    shutil.copy2(ROOT / "storager" / "aio" / "_generated.py", root / "storager" / "aio")
    (root / "docs").mkdir()
    shutil.copy2(ROOT / "docs" / "capabilities.md", root / "docs" / "capabilities.md")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    for source, target in TWINS.items():  # the sync combinators derived from async sources
        for name in (source, target):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
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


# -- header-bound pairs ------------------------------------------------------------------


def _service(tree: Path, name: str) -> str:
    model = load_model(tree)
    svc = next(s for s in model.services if s.name == name)
    return render_service(model, svc)


def test_header_pairs_get_the_header_check_after_their_type_check() -> None:
    model = load_model()
    header = {p.name for p in model.pairs.values() if p.header}
    assert {"content_type", "user_metadata", "if_match", "storage_class"} <= header
    s3 = render_service(model, next(s for s in model.services if s.name == "s3"))
    assert (
        'check_str("write", SERVICE_NAME, path, "content_type", content_type)\n'
        '            check_header("write", SERVICE_NAME, path, "content_type", content_type)'
    ) in s3
    assert 'check_header_map("write", SERVICE_NAME, path, "user_metadata", user_metadata)' in s3
    assert 'check_header("new", SERVICE_NAME, "", "default_content_type"' in s3
    assert 'check_header("write", SERVICE_NAME, path, "size"' not in s3
    assert "printable ASCII only" in s3  # the rule is in the generated docstrings


def test_header_pairs_module_lists_the_marked_global_pairs(tree: Path) -> None:
    append(
        tree / "definitions" / "pairs.toml",
        '\n[x_custom]\nscope = "op"\ntype = "str"\nheader = true\ndescription = "A header."\n',
    )
    text = render_header_pairs(load_model(tree))
    assert '"x_custom",' in text and '"content_type",' in text and '"size"' not in text


def test_a_service_pair_marked_header_gets_the_check(tree: Path) -> None:
    toml = tree / "services" / "memory" / "service.toml"
    text = toml.read_text().replace(
        'pairs = ["content_type", "content_md5"',
        'pairs = ["x_label", "content_type", "content_md5"',
    )
    append_text = '\n[pairs.x_label]\ntype = "str"\nheader = true\ndescription = "A label."\n'
    toml.write_text(text + append_text)
    generated = _service(tree, "memory")
    assert 'check_header("write", SERVICE_NAME, path, "x_label", x_label)' in generated


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('type = "int"\nheader = true', "is a header but has type 'int'"),
        ('type = "str"\nheader = "yes"', "header must be true or false"),
        ('type = "str"\nheader = true\nsecret = true', "a header pair cannot be secret"),
    ],
)
def test_a_malformed_header_mark_is_refused(tree: Path, body: str, message: str) -> None:
    append(
        tree / "definitions" / "pairs.toml",
        f'\n[bad_header]\nscope = "op"\n{body}\ndescription = "Bad."\n',
    )
    with pytest.raises(DefinitionError, match=message):
        load_model(tree)


def test_choices_with_quotes_and_backslashes_render_as_valid_literals() -> None:
    from typing import Literal  # noqa: F401 - the rendered annotation names it

    from codegen.model import Pair
    from codegen.render import annotation

    choices = ('say "hi"', "back\\slash", "plain")
    pair = Pair("mode", "op", "str", "a mode", choices=choices)
    rendered = annotation(pair)
    assert eval(rendered).__args__ == choices
