"""Small plugins registered for the pipeline loader's tests, and a pipeline-file writer.

The built-in connectors are not needed here: these tests register their own plugins under
names no built-in uses, so the loader is tested against specs whose every field is known.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from omconnect.connectors.api import (
    ConnectorSpec,
    PollResult,
    Position,
    RecordBatch,
    SecretStr,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
    TaskContext,
    Transform,
    plugins,
    register,
)
from omconnect.runtime.config.durations import Duration


class S3Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = None
    region: str = "us-east-1"
    secret_access_key: SecretStr | None = None


class FakeSourceSpec(ConnectorSpec):
    path: str
    """Where the rows are."""
    tables: list[str] = []
    batch_size: int = 1000
    password: SecretStr | None = None
    poll_interval: Duration = 1.0
    s3: S3Options | None = None


class FakeSinkSpec(ConnectorSpec):
    path: str
    mode: Literal["append", "upsert"] = "append"
    url: str | None = None
    dsn: SecretStr | None = None
    """A secret whose name does not say so: only its type marks it."""


class FakeFilterSpec(ConnectorSpec):
    where: str


class FakeRenameSpec(ConnectorSpec):
    fields: dict[str, str]


class _IdleSourceTask(SourceTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        pass

    def poll(self) -> PollResult:
        return None

    def stop(self) -> None:
        pass


class _IdleSinkTask(SinkTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        pass

    def put(self, batch: RecordBatch) -> None:
        pass

    def flush(self, positions: Sequence[Position]) -> None:
        pass

    def stop(self) -> None:
        pass


class FakeSource(SourceConnector):
    """Reads nothing; exists for its spec."""

    name = "test-src"
    spec = FakeSourceSpec
    task_class = _IdleSourceTask


class FakeSink(SinkConnector):
    """Writes nothing; exists for its spec."""

    name = "test-sink"
    spec = FakeSinkSpec
    task_class = _IdleSinkTask


class FakeFilter(Transform):
    name = "test-filter"
    spec = FakeFilterSpec

    def apply(self, batch: RecordBatch) -> RecordBatch:
        return batch


class FakeRename(Transform):
    name = "test-rename"
    spec = FakeRenameSpec

    def apply(self, batch: RecordBatch) -> RecordBatch:
        return batch


def _load_plugins_once() -> None:
    try:
        plugins.load_plugins()
    except Exception:
        # Some built-in plugin modules named by entry points may not exist yet in a checkout
        # being built: load those that import, then mark loading done so lookups work.
        for group in (plugins.CONNECTOR_GROUP, plugins.TRANSFORM_GROUP):
            for entry_point in entry_points(group=group):
                with contextlib.suppress(Exception):
                    entry_point.load()
        plugins._loaded = True


_load_plugins_once()
for plugin in (FakeSource, FakeSink, FakeFilter, FakeRename):
    register(plugin)


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML text to ``tmp_path/name`` and return its path."""

    def write(text: str, name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
