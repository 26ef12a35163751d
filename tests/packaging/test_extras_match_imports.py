"""Each service's extra declares exactly the distributions that service imports.

An undeclared import works only while some other package happens to pull the distribution
in (botocore came with boto3, fsspec with s3fs); a declared one that nothing imports (boto3
in the s3 extra) only gives pip more to resolve. The imports are read from the source with
``ast`` and mapped to the distribution that installed each module in this environment (the
dev install has every extra).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# services/<folder> -> the extra that installs what it needs.
SERVICE_EXTRAS = {"s3": "s3", "gcs": "gcs", "azblob": "azure", "sftp": "sftp"}
# Folders of storager/ whose optional features have an extra of their own (imported lazily,
# so the core still imports with no dependency installed).
CORE_EXTRAS = {
    "combinators/striped": "striped",
    "gateway": "gateway",
    "cli": "cli",
    "fsspec": "fsspec",
    "aio/_anyio": "trio",
}


def canonical(name: str) -> str:
    """Normalise a distribution name as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Return the distribution named by a PEP 508 requirement string."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return canonical(match.group(1))


def declared(extra: str) -> set[str]:
    """Return the distributions an extra lists directly (self-references excluded)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {requirement_name(r) for r in project["optional-dependencies"][extra]}
    return names - {"storager"}


def third_party_imports(folder: Path) -> set[str]:
    """Return the absolute, non-stdlib, non-storager modules imported under ``folder``."""
    modules: set[str] = set()
    for source in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
    return {
        m
        for m in modules
        if m.split(".")[0] not in sys.stdlib_module_names | {"storager", "__future__"}
    }


@cache
def file_owners() -> dict[Path, str]:
    """Map every installed file to the distribution that installed it."""
    owners: dict[Path, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            owners[Path(str(dist.locate_file(file))).resolve()] = canonical(dist.metadata["Name"])
    return owners


def owner(module: str) -> str:
    """Return the distribution that installed ``module`` (namespace packages: the submodule's)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is not installed; install the dev extra"
    if spec.origin and spec.origin not in ("built-in", "frozen", "namespace"):
        path = Path(spec.origin).resolve()
    else:
        # A namespace package (google, azure) belongs to no one distribution.
        pytest.fail(f"{module} is a namespace package; import a module inside it")
    dist = file_owners().get(path)
    assert dist is not None, f"no installed distribution owns {path}"
    return dist


@pytest.mark.parametrize("service", sorted(SERVICE_EXTRAS))
def test_extra_declares_every_distribution_its_service_imports(service: str) -> None:
    extra = SERVICE_EXTRAS[service]
    imported = {owner(m) for m in third_party_imports(REPO / "services" / service)}
    missing = imported - declared(extra)
    assert not missing, f"services/{service} imports {sorted(missing)}, not in the {extra} extra"


@pytest.mark.parametrize("service", sorted(SERVICE_EXTRAS))
def test_extra_declares_nothing_its_service_does_not_import(service: str) -> None:
    extra = SERVICE_EXTRAS[service]
    imported = {owner(m) for m in third_party_imports(REPO / "services" / service)}
    unused = declared(extra) - imported
    assert not unused, (
        f"the {extra} extra lists {sorted(unused)}, which services/{service} never imports"
    )


@pytest.mark.parametrize("folder", sorted(CORE_EXTRAS))
def test_extra_declares_exactly_what_its_core_folder_imports(folder: str) -> None:
    extra = CORE_EXTRAS[folder]
    imported = {owner(m) for m in third_party_imports(REPO / "storager" / folder)}
    assert imported == declared(extra), f"storager/{folder} imports {sorted(imported)}"


def test_core_library_imports_only_the_standard_library() -> None:
    # storager.testing imports pytest, which the pytest plugin entry point only loads under
    # pytest; everything else must work with no dependency installed (dependencies = []),
    # except the folders of CORE_EXTRAS, checked against their extras above.
    optional = set()
    for folder in CORE_EXTRAS:
        optional |= third_party_imports(REPO / "storager" / folder)
    core = {
        m
        for m in third_party_imports(REPO / "storager")
        if not m.startswith("pytest") and not m.startswith("_pytest") and m not in optional
    }
    assert not core, f"storager/ imports {sorted(core)} but declares no dependency"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
