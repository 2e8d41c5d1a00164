"""The conformance kit catches broken connectors, and drives async sources too."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorSpec,
    PollResult,
    Position,
    RecordBatch,
    SinkConnector,
    SinkTask,
    TaskContext,
    register,
)
from omconnect.connectors.files._source_connector import FileSourceConnector
from omconnect.connectors.files.csv import CsvSource, CsvSourceTask
from omconnect.connectors.files.parquet import ParquetSourceSpec, ParquetSourceTask
from omconnect.runtime.testing import (
    MemoryOffsetReader,
    SourceConnectorTests,
    sink_test_class,
    source_test_class,
)
from omconnect.runtime.testing._memory_offsets import CollectingErrorReporter
from tests.support.file_formats import read_back, write_csv, write_parquet


class _ForgetfulCsvTask(CsvSourceTask):
    """Ignores committed offsets: every run starts from the beginning."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        blank = TaskContext(
            context.pipeline, context.task_id, MemoryOffsetReader(), context.errors, context.once
        )
        super().start(config, blank)


class _ForgetfulCsvSource(CsvSource):
    name = "kit-test-forgetful-csv"
    task_class = _ForgetfulCsvTask


class _UnmarkedCsvTask(CsvSourceTask):
    """Emits batches without position marks."""

    def poll(self) -> PollResult:
        batch = super().poll()
        if isinstance(batch, RecordBatch):
            return RecordBatch(values=batch.values, schema=batch.schema)
        return batch


class _UnmarkedCsvSource(CsvSource):
    name = "kit-test-unmarked-csv"
    task_class = _UnmarkedCsvTask


class _AppendSpec(ConnectorSpec):
    path: str
    """Where the files go."""


class _EagerAppendTask(SinkTask):
    """Publishes each batch at once under a random name: replays duplicate rows."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, _AppendSpec)
        self.directory = Path(config.path)

    def put(self, batch: RecordBatch) -> None:
        pq.write_table(
            pa.Table.from_batches([batch.values]), self.directory / f"{uuid.uuid4()}.parquet"
        )

    def flush(self, positions: Sequence[Position]) -> None:
        pass

    def stop(self) -> None:
        pass


class _EagerAppendSink(SinkConnector):
    name = "kit-test-eager-append"
    spec: ClassVar[type[ConnectorSpec]] = _AppendSpec
    task_class = _EagerAppendTask


class _AsyncParquetTask(AsyncSourceTask):
    """An async source: the parquet task behind coroutines."""

    def __init__(self) -> None:
        self.inner = ParquetSourceTask()

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        self.inner.start(config, context)

    async def poll(self) -> PollResult:
        return self.inner.poll()

    async def stop(self) -> None:
        self.inner.stop()


class _AsyncParquetSource(FileSourceConnector):
    name = "kit-test-async-parquet"
    spec = ParquetSourceSpec
    task_class = _AsyncParquetTask


for plugin in (_ForgetfulCsvSource, _UnmarkedCsvSource, _EagerAppendSink, _AsyncParquetSource):
    register(plugin)


def _csv_config(root: Path) -> dict[str, Any]:
    return {"path": f"{root}/*.csv"}


def test_a_source_that_ignores_offsets_fails_the_resume_test(tmp_path: Path) -> None:
    suite = source_test_class(
        "kit-test-forgetful-csv", make_config=_csv_config, write_rows=write_csv
    )()
    with pytest.raises(AssertionError, match=r"exactly once|committed"):
        suite.test_stop_then_resume_reads_every_row_exactly_once(tmp_path)


def test_a_source_without_marks_fails_the_position_test(tmp_path: Path) -> None:
    suite = source_test_class(
        "kit-test-unmarked-csv", make_config=_csv_config, write_rows=write_csv
    )()
    with pytest.raises(AssertionError, match="position mark"):
        suite.test_positions_are_valid(tmp_path)


def test_an_undescribed_spec_fails_the_spec_test(monkeypatch: pytest.MonkeyPatch) -> None:
    suite = sink_test_class(
        "kit-test-eager-append",
        make_config=lambda root: {"path": str(root)},
        read_back=lambda config: read_back(Path(config["path"]), "parquet"),
    )()
    monkeypatch.setattr(_AppendSpec.model_fields["path"], "description", None)
    with pytest.raises(AssertionError, match="without a description"):
        suite.test_spec_fields_are_described()


def test_a_sink_that_is_not_idempotent_fails_the_replay_test(tmp_path: Path) -> None:
    suite = sink_test_class(
        "kit-test-eager-append",
        make_config=lambda root: {"path": str(root)},
        read_back=lambda config: read_back(Path(config["path"]), "parquet"),
    )()
    with pytest.raises(AssertionError, match="duplicates"):
        suite.test_replay_after_a_crash_leaves_no_duplicates(tmp_path)


class TestAsyncSourceThroughTheKit(SourceConnectorTests):
    connector = "kit-test-async-parquet"

    def make_config(self, root: Path) -> dict[str, Any]:
        return {"path": f"{root}/*.parquet"}

    def write_rows(self, root: Path, rows: pa.Table) -> None:
        write_parquet(root, rows)


def test_the_factory_builds_the_same_tests_as_a_subclass(tmp_path: Path) -> None:
    built = source_test_class(
        "kit-test-async-parquet", make_config=lambda root: {"path": str(root)}
    )
    assert issubclass(built, SourceConnectorTests) and built.connector == "kit-test-async-parquet"
    assert built.rows == TestAsyncSourceThroughTheKit.rows
    with pytest.raises(pytest.skip.Exception, match="no write_rows given"):
        built().test_stop_then_resume_reads_every_row_exactly_once(tmp_path)


def test_a_subclass_without_make_config_says_what_to_define(tmp_path: Path) -> None:
    class Incomplete(SourceConnectorTests):
        connector = "csv"

    with pytest.raises(NotImplementedError, match=r"Incomplete: define make_config\(root\)"):
        Incomplete().test_spec_refuses_unknown_keys(tmp_path)


def test_memory_offsets_keep_the_last_position_and_refuse_non_json() -> None:
    offsets = MemoryOffsetReader()
    offsets.commit([Position({"file": "a"}, {"row": 1}), Position({"file": "a"}, {"row": 2})])
    assert offsets.get({"file": "a"}) == {"row": 2}
    assert offsets.get({"file": "b"}) is None
    assert offsets.all() == [({"file": "a"}, {"row": 2})]
    with pytest.raises(TypeError):
        offsets.commit([Position({"file": "a"}, {"row": object()})])


def test_error_reporter_collects_reports() -> None:
    reporter = CollectingErrorReporter()
    batch = RecordBatch(values=pa.record_batch({"a": [1]}), schema=None)  # type: ignore[arg-type]
    reporter.report(batch, [0], ValueError("bad"), "sink")
    assert reporter.reports[0].rows == [0] and reporter.reports[0].stage == "sink"
