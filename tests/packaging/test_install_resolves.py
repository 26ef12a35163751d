"""Every user-facing extra resolves at once with plain pip, without .ci/constraints.txt.

The s3 extra once listed boto3 next to s3fs: pip took the newest boto3, whose botocore
aiobotocore does not accept, and walked back through dozens of aiobotocore and boto3
releases (minutes in a fresh venv). Here each extra is resolved as a user would: a fresh
``python -m venv`` with the pip it ships, no pip configuration file (``PIP_CONFIG_FILE`` is
set to the null device, which also hides this machine's /etc/xdg/pip and /etc/pip.conf), no
``PIP_CONSTRAINT``, ``PIP_FIND_LINKS`` or extra index, no cache, against PyPI. It must finish
within ``LIMIT_S`` and without the resolver backtracking at all.

Needs the network; deselect with ``-m "not install"`` when offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[2]
EXTRAS = ("s3", "gcs", "azure", "sftp", "all")
LIMIT_S = 90.0
# Printed (at the default verbosity) each time pip's resolver starts walking back.
BACKTRACK = "pip is looking at multiple versions of"
# How to reach an index (network settings) is kept; what may be resolved is not.
KEPT_PIP_VARIABLES = {
    "PIP_CERT",
    "PIP_CLIENT_CERT",
    "PIP_PROXY",
    "PIP_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "PIP_TIMEOUT",
    "PIP_RETRIES",
}
# What each extra must bring (beyond storager), and what none of them may.
EXPECTED = {
    "s3": {"s3fs", "aiobotocore", "botocore", "fsspec"},
    "gcs": {"gcsfs", "fsspec", "google-auth"},
    "azure": {"adlfs", "azure-storage-blob", "azure-core"},
    "sftp": {"paramiko"},
}
EXPECTED["all"] = set().union(*EXPECTED.values())
NEVER = {"boto3"}


@dataclass(frozen=True)
class Resolution:
    """One dry-run install of one extra."""

    extra: str
    seconds: float
    returncode: int | None  # None: killed at the time limit
    output: str
    installed: frozenset[str]

    def backtracked_over(self) -> list[str]:
        """Return the resolver's backtracking lines, if any."""
        lines = (line.strip() for line in self.output.splitlines() if BACKTRACK in line)
        return list(dict.fromkeys(lines))


def plain_environment(tmp: Path) -> dict[str, str]:
    """Return the environment of a user with no pip configuration and no constraints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update({k: v for k, v in os.environ.items() if k in KEPT_PIP_VARIABLES})
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PIP_NO_CACHE_DIR="1",
        TMPDIR=str(tmp),
    )
    return env


def canonical(name: str) -> str:
    """Normalise a distribution name as PEP 503 does."""
    return name.lower().replace("_", "-").replace(".", "-")


def build_wheel(python: Path, env: dict[str, str], tmp: Path) -> Path:
    """Build storager's wheel once from a copy of the sources (the work tree stays clean)."""
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("storager", "services"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp / "wheel"
    subprocess.run(
        [str(python), "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("storager-*.whl")
    return wheel


def resolve(python: Path, env: dict[str, str], wheel: Path, extra: str, tmp: Path) -> Resolution:
    """Dry-run ``pip install "storager[extra]"`` and time it."""
    report = tmp / f"report-{extra}.json"
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--progress-bar",
        "off",
        "--report",
        str(report),
        f"{wheel}[{extra}]",
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=LIMIT_S,
        )
    except subprocess.TimeoutExpired as killed:
        raw = killed.stdout or b""
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        return Resolution(extra, time.monotonic() - start, None, text, frozenset())
    seconds = time.monotonic() - start
    installed: frozenset[str] = frozenset()
    if done.returncode == 0:
        items = json.loads(report.read_text())["install"]
        installed = frozenset(canonical(item["metadata"]["name"]) for item in items)
    return Resolution(extra, seconds, done.returncode, done.stdout, installed)


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Resolution]:
    """Resolve every extra concurrently in one fresh venv (a dry run installs nothing)."""
    tmp = tmp_path_factory.mktemp("install")
    env = plain_environment(tmp)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    python = venv / "bin" / "python"
    wheel = build_wheel(python, env, tmp)
    with ThreadPoolExecutor(max_workers=len(EXTRAS)) as pool:
        futures = {e: pool.submit(resolve, python, env, wheel, e, tmp) for e in EXTRAS}
        return {extra: future.result() for extra, future in futures.items()}


@pytest.mark.parametrize("extra", EXTRAS)
def test_extra_resolves_quickly_without_backtracking(
    resolutions: dict[str, Resolution], extra: str
) -> None:
    r = resolutions[extra]
    tail = "\n".join(r.output.splitlines()[-15:])
    assert r.returncode is not None, (
        f'pip install "storager[{extra}]" still resolving after {LIMIT_S:.0f} s; '
        f"backtracked over: {r.backtracked_over()}\n{tail}"
    )
    assert r.returncode == 0, f'pip install "storager[{extra}]" failed:\n{tail}'
    assert not r.backtracked_over(), (
        f'pip backtracked resolving "storager[{extra}]" ({r.seconds:.1f} s): {r.backtracked_over()}'
    )
    assert r.seconds <= LIMIT_S, f'"storager[{extra}]" took {r.seconds:.1f} s (limit {LIMIT_S} s)'


@pytest.mark.parametrize("extra", EXTRAS)
def test_extra_brings_its_sdks_and_not_boto3(
    resolutions: dict[str, Resolution], extra: str
) -> None:
    r = resolutions[extra]
    if r.returncode != 0:
        pytest.fail(f'"storager[{extra}]" did not resolve; see the test above')
    assert EXPECTED[extra] <= r.installed, f"missing: {sorted(EXPECTED[extra] - r.installed)}"
    assert not (NEVER & r.installed), f'"storager[{extra}]" pulls in {sorted(NEVER & r.installed)}'
