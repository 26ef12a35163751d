"""``python -m codegen [--check]``: write (or verify) everything generated."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

from codegen.model import ROOT, DefinitionError, Model, load_model
from codegen.render import (
    render_capability,
    render_header_pairs,
    render_matrix,
    render_registry,
    render_service,
)
from codegen.render_async import render_async_protocols, render_async_view
from codegen.unasync import TWINS, UnasyncError, render_sync_twin


def _format_python(text: str, filename: Path) -> str:
    """Format generated Python with ruff, so generated files pass ``ruff format``."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(filename), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    except FileNotFoundError as exc:  # pragma: no cover - ruff ships with the dev extra
        raise SystemExit("codegen needs ruff: pip install -e '.[dev]'") from exc
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"ruff could not format generated {filename}:\n{exc.stderr}") from exc
    return done.stdout


def _fix_derived(text: str, filename: Path) -> str:
    """Apply ruff's safe fixes to a derived module.

    Renaming leaves some imports doubled or unused, and dropping ``async`` can leave
    two ``with`` statements that read better as one.
    """
    done = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--fix", "--exit-zero", "--quiet"),
            *("--stdin-filename", str(filename), "-"),
        ],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    problems = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--select", "F", "--quiet"),
            *("--stdin-filename", str(filename), "-"),
        ],
        input=done.stdout,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if problems.returncode != 0:  # a name the rewrite left undefined, or defined twice
        raise SystemExit(f"codegen: derived {filename} is broken:\n{problems.stdout}")
    return done.stdout


def outputs(model: Model, root: Path = ROOT) -> dict[Path, str]:
    """Every generated file under ``root`` and its content."""
    files: dict[Path, str] = {
        root / "storager" / "_capability.py": render_capability(model),
        root / "storager" / "_header_pairs.py": render_header_pairs(model),
        root / "services" / "__init__.py": render_registry(model),
        root / "storager" / "_async_protocols.py": render_async_protocols(model),
        root / "storager" / "aio" / "_generated.py": render_async_view(model),
    }
    for svc in model.services:
        files[svc.folder / "_generated.py"] = render_service(model, svc)
    for source, target in TWINS.items():
        try:
            derived = render_sync_twin(root, source)
        except UnasyncError as exc:
            raise SystemExit(f"codegen: {source}: {exc}") from exc
        files[root / target] = _fix_derived(derived, root / target)
    files = {path: _format_python(text, path) for path, text in files.items()}
    files[root / "docs" / "capabilities.md"] = render_matrix(model)
    return files


def check_packaging(model: Model, root: Path = ROOT) -> list[str]:
    """Return problems with pyproject's package list (every service must install)."""
    with (root / "pyproject.toml").open("rb") as fh:
        packages = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    return [
        f"pyproject.toml: package storager.services.{svc.name} is not listed"
        for svc in model.services
        if f"storager.services.{svc.name}" not in packages
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if anything is stale")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the tree to read and write (default: this repo)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        model = load_model(root)
    except DefinitionError as exc:
        print(f"codegen: {exc}", file=sys.stderr)
        return 2
    problems = check_packaging(model, root)
    stale = []
    for path, text in outputs(model, root).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(root))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for problem in problems:
        print(f"codegen: {problem}", file=sys.stderr)
    if args.check and stale:
        for path in stale:
            print(f"codegen: {path} is stale; run `python -m codegen`", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
