"""The README's examples run, and print what the README says they print."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang: str) -> list[str]:
    """Return the README's fenced blocks whose info string is ``lang``, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    info = ""
    for line in README.read_text(encoding="utf-8").splitlines(keepends=True):
        if current is None and line.startswith("```"):
            current, info = [], line[3:].strip()
        elif current is not None and line.startswith("```"):
            if info == lang:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return out.getvalue()


def test_first_example_runs_and_reports_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = _blocks("python")[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cat.jpg").write_bytes(b"\xff\xd8 not really a cat \xff\xd9")
    code = code.replace("fs:///tmp/data", f"fs://{tmp_path}/data")
    printed = _run(code).splitlines()
    assert printed[0] == str(len((tmp_path / "cat.jpg").read_bytes()))
    assert printed[1].startswith("2026/cat.jpg ")
    assert printed[-1] == "read fs:/photos/missing.jpg: not found"
    assert (tmp_path / "data" / "photos" / "backup" / "cat.jpg").exists()


def test_combinators_example_prints_the_tree_shown(tmp_path: Path) -> None:
    code = next(block for block in _blocks("python") if "describe(store)" in block)
    code = code.replace('"/data/', f'"{tmp_path}/')
    shown = next(block for block in _blocks("") if block.startswith("logged ["))
    assert _run(code) == shown
