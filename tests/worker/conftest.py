"""Running pipelines in-process with the toy connectors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omconnect.runtime.brokers import Broker
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.runner import PipelineRunner
from tests.support import toy_connectors


@pytest.fixture(autouse=True)
def fresh_collections() -> None:
    toy_connectors.COLLECTED.clear()


def run_pipeline(
    path: Path, text: str, broker: Broker | None = None, timeout: float = 60.0
) -> PipelineMetrics:
    """Write ``text`` to ``path`` and run it once, in-process."""
    path.write_text(text)
    runner = PipelineRunner(load_pipeline(path), once=True, broker=broker)
    return asyncio.run(asyncio.wait_for(runner.run(), timeout))
