"""Fixtures of the schema registry tests: ``omconnect serve`` serving an embedded registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from tests.support.served_worker import ServedWorker


@pytest.fixture
def served_registry(tmp_path: Path) -> Iterator[ServedWorker]:
    """The real ``serve`` service (no pipelines) serving a fresh embedded registry over HTTP
    on a free loopback port; ``.url`` is the registry URL a client takes."""
    folder = tmp_path / "served-pipelines"
    folder.mkdir()
    registry = SqliteSchemaRegistry(tmp_path / "served-state" / "registry.sqlite")
    try:
        with ServedWorker(folder, registry=registry) as worker:
            yield worker
    finally:
        registry.close()
