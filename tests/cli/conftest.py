"""CLI test settings: resume records go to the test's own directory, never the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from storager.cli._resume import RESUME_DIR_ENV


@pytest.fixture(autouse=True)
def resume_records(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point the parts copies' resume records (and any child CLI's) at a fresh directory."""
    directory = tmp_path_factory.mktemp("resume")
    monkeypatch.setenv(RESUME_DIR_ENV, str(directory))
    return directory
