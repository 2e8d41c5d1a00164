"""Fixtures for end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.omconnect_process import REPO


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repository's pipelines/ folder copied into an empty working directory."""
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines")
    return tmp_path
