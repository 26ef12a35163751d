""".ci/constraints.txt pins versions that every extra in pyproject.toml accepts.

The constraints file is only a pin for reproducible CI runs; a floor raised in pyproject.toml
without refreshing the pin would make ``make install-test`` fail to resolve.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    """Return the constraints file as canonical name -> pinned version."""
    pinned: dict[str, str] = {}
    for line in (REPO / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = version
    return pinned


def test_every_pinned_version_satisfies_every_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = pins()
    wrong = []
    for extra, requirements in project["optional-dependencies"].items():
        for text in requirements:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            if name == "storager":
                continue
            assert name in pinned, f"{name} (extra {extra}) is not pinned in .ci/constraints.txt"
            if not requirement.specifier.contains(pinned[name], prereleases=True):
                wrong.append(f"{name}=={pinned[name]} does not satisfy {text} ({extra})")
    assert not wrong, wrong
