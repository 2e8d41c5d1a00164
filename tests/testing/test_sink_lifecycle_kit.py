"""The conformance kit's sink lifecycle checks (assignment, durable positions, stored
positions, deletes) pass sinks that follow the lifecycle and fail toy sinks that break it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from omconnect.connectors.api import (
    ConnectorError,
    ConnectorSpec,
    Position,
    RecordBatch,
    SinkConnector,
    SinkTask,
    TaskContext,
    TopicPartition,
    register,
)
from omconnect.runtime.testing import (
    SinkConnectorTests,
    SinkDriver,
    partitions_of,
    sink_batches,
    sink_test_class,
    standard_rows,
)
from tests.support.file_formats import read_back


class _DirectorySpec(ConnectorSpec):
    path: str
    """Where the files go."""


class _BufferingTask(SinkTask):
    """Buffers rows per partition; ``flush`` publishes them as one Parquet file (temporary
    name, then rename); ``close`` drops a partition's buffer. Appends: a replay duplicates."""

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, _DirectorySpec)
        self.directory = Path(config.path)
        self.context = context
        self.buffers: dict[TopicPartition, list[RecordBatch]] = {}

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            self.buffers.pop(tp, None)

    def put(self, batch: RecordBatch) -> None:
        (tp,) = partitions_of(batch)
        self.buffers.setdefault(tp, []).append(batch)

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        self._publish([b for batches in self.buffers.values() for b in batches], [])
        self.buffers.clear()
        return None

    def stop(self) -> None:
        pass

    def _publish(self, batches: list[RecordBatch], positions: Sequence[Position]) -> None:
        if not batches and not positions:
            return
        tables = [pa.Table.from_batches([b.values]) for b in batches]
        table = pa.concat_tables(tables, promote_options="permissive") if tables else _EMPTY
        stored = json.dumps([[dict(p.partition), dict(p.offset)] for p in positions])
        table = table.replace_schema_metadata({"positions": stored})
        number = len(list(self.directory.glob("*.parquet")))  # names sort in flush order
        final = self.directory / f"{number:06d}-{uuid.uuid4()}.parquet"
        temp = final.with_name(f".{final.name}.tmp")
        pq.write_table(table, temp)
        temp.rename(final)


_EMPTY = standard_rows(0, 0)


class _LeakyCloseTask(_BufferingTask):
    """Keeps what it buffered for a closed partition, and writes it at the next flush."""

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        pass


class _OverclaimingTask(_BufferingTask):
    """Writes only the first buffered batch of each partition, but says everything is
    durable."""

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        self._publish([batches.pop(0) for batches in self.buffers.values() if batches], [])
        return None


class _HonestPartialTask(_BufferingTask):
    """Writes only the first buffered batch of each partition, and says so."""

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        written = [batches.pop(0) for batches in self.buffers.values() if batches]
        self._publish(written, [])
        return [b.positions[-1] for b in written]


class _LedgerTask(_BufferingTask):
    """Stores positions in each published file's metadata: one atomic rename publishes the
    rows and the positions together, so replays from ``stored_positions`` are exact."""

    stores_positions = True

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        self._publish([b for batches in self.buffers.values() for b in batches], positions)
        self.buffers.clear()
        return None

    def stored_positions(self) -> list[Position]:
        files = sorted(p for p in self.directory.glob("*.parquet"))
        return self._positions_in(files[-1]) if files else []

    @staticmethod
    def _positions_in(path: Path) -> list[Position]:
        metadata = pq.read_schema(path).metadata or {}
        return [Position(*pair) for pair in json.loads(metadata[b"positions"])]


class _LaggingLedgerTask(_LedgerTask):
    """Returns the positions of the flush before the last one."""

    def stored_positions(self) -> list[Position]:
        files = sorted(p for p in self.directory.glob("*.parquet"))
        return self._positions_in(files[-2]) if len(files) > 1 else []


class _LeakyLedgerTask(_LedgerTask):
    """Keeps its buffer on ``close``: a rewind writes the rows twice."""

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        pass


class _KeyValueSpec(ConnectorSpec):
    path: str
    """The JSON file holding the rows by key."""
    key: list[str] = ["id"]
    """The key columns."""


class _KeyValueTask(SinkTask):
    """Upserts rows by key into a JSON file and applies deletes."""

    applies_deletes = True

    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, _KeyValueSpec)
        self.config = config
        self.file = Path(config.path) / "rows.json"
        self.pending: list[RecordBatch] = []

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        self.pending = [b for b in self.pending if partitions_of(b)[0] not in partitions]

    def put(self, batch: RecordBatch) -> None:
        missing = [k for k in self.config.key if k not in batch.values.schema.names]
        if missing:
            raise ConnectorError(f"key columns {missing} are not in the rows")
        self.pending.append(batch)

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        rows = json.loads(self.file.read_text()) if self.file.exists() else {}
        for batch in self.pending:
            keys = batch.key_columns()
            assert keys is not None
            values = batch.values.to_pylist()
            deleted = batch.delete_mask().tolist()
            for key, value, delete in zip(keys.to_pylist(), values, deleted, strict=True):
                name = json.dumps([key[k] for k in self.config.key])
                if delete and self.applies_deletes:
                    rows.pop(name, None)
                elif not delete:
                    rows[name] = value
        self.pending = []
        temp = self.file.with_name(".rows.json.tmp")
        temp.write_text(json.dumps(rows))
        temp.rename(self.file)
        return None

    def stop(self) -> None:
        pass


class _IgnoringDeletesTask(_KeyValueTask):
    applies_deletes = False


def _key_value_rows(config: dict[str, Any]) -> pa.Table:
    file = Path(config["path"]) / "rows.json"
    rows = list(json.loads(file.read_text()).values()) if file.exists() else []
    if not rows:
        return pa.table({"id": pa.array([], pa.int64())})
    columns = dict.fromkeys(name for row in rows for name in row)
    return pa.table({name: [row.get(name) for row in rows] for name in columns})


def _sink(name: str, task: type[SinkTask], spec: type[ConnectorSpec] = _DirectorySpec) -> None:
    connector = type(
        f"Sink_{task.__name__}", (SinkConnector,), {"name": name, "spec": spec, "task_class": task}
    )
    register(connector)


_sink("kit-test-buffering", _BufferingTask)
_sink("kit-test-leaky-close", _LeakyCloseTask)
_sink("kit-test-overclaiming", _OverclaimingTask)
_sink("kit-test-honest-partial", _HonestPartialTask)
_sink("kit-test-ledger", _LedgerTask)
_sink("kit-test-lagging-ledger", _LaggingLedgerTask)
_sink("kit-test-leaky-ledger", _LeakyLedgerTask)
_sink("kit-test-key-value", _KeyValueTask, _KeyValueSpec)
_sink("kit-test-ignoring-deletes", _IgnoringDeletesTask, _KeyValueSpec)


def _parquet_sink_suite(name: str, **options: Any) -> Any:
    return sink_test_class(
        name,
        make_config=lambda root: {"path": str(root)},
        read_back=lambda config: read_back(Path(config["path"]), "parquet"),
        **options,
    )()


def test_a_sink_that_writes_a_closed_partition_fails_the_rebalance_test(
    tmp_path: Path,
) -> None:
    _parquet_sink_suite("kit-test-buffering").test_a_closed_partition_is_dropped(tmp_path)
    suite = _parquet_sink_suite("kit-test-leaky-close")
    with pytest.raises(AssertionError, match="closed partition became visible after the close"):
        suite.test_a_closed_partition_is_dropped(tmp_path / "leaky")


def test_a_sink_that_claims_rows_it_did_not_write_fails_the_durable_positions_test(
    tmp_path: Path,
) -> None:
    honest = _parquet_sink_suite("kit-test-honest-partial")
    honest.test_flush_claims_only_what_is_visible(tmp_path)
    suite = _parquet_sink_suite("kit-test-overclaiming")
    with pytest.raises(AssertionError, match=r"as durable, but .* not visible"):
        suite.test_flush_claims_only_what_is_visible(tmp_path / "overclaiming")


def test_stored_positions_are_checked_for_exactly_once(tmp_path: Path) -> None:
    _parquet_sink_suite("kit-test-ledger").test_stored_positions_give_exactly_once(tmp_path)
    lagging = _parquet_sink_suite("kit-test-lagging-ledger")
    with pytest.raises(AssertionError, match="stored_positions"):
        lagging.test_stored_positions_give_exactly_once(tmp_path / "lagging")
    leaky = _parquet_sink_suite("kit-test-leaky-ledger")
    with pytest.raises(AssertionError, match="duplicates"):
        leaky.test_stored_positions_give_exactly_once(tmp_path / "leaky")
    appending = _parquet_sink_suite("kit-test-buffering")
    with pytest.raises(pytest.skip.Exception, match="does not store positions"):
        appending.test_stored_positions_give_exactly_once(tmp_path / "appending")


def _key_value_suite(name: str, deletes: Any) -> Any:
    return sink_test_class(
        name,
        make_config=lambda root: {"path": str(root)},
        read_back=_key_value_rows,
        dedupes_by_key=True,
        deletes=deletes,
    )()


def test_deletes_are_checked_against_the_declared_behaviour(tmp_path: Path) -> None:
    writes_nulls = _parquet_sink_suite("kit-test-buffering", deletes="skip")
    with pytest.raises(AssertionError, match="have no id"):
        writes_nulls.test_deletes_follow_the_declared_behaviour(tmp_path)
    ignoring = _key_value_suite("kit-test-ignoring-deletes", "apply")
    with pytest.raises(AssertionError, match="still visible"):
        ignoring.test_deletes_follow_the_declared_behaviour(tmp_path / "ignoring")
    not_marking = _key_value_suite("kit-test-key-value", "mark")
    with pytest.raises(AssertionError, match="__deleted"):
        not_marking.test_deletes_follow_the_declared_behaviour(tmp_path / "marking")
    undeclared = _parquet_sink_suite("kit-test-buffering")
    with pytest.raises(pytest.skip.Exception, match="no deletes behaviour declared"):
        undeclared.test_deletes_follow_the_declared_behaviour(tmp_path / "undeclared")


class TestKeyValueSinkThroughTheKit(SinkConnectorTests):
    connector = "kit-test-key-value"
    dedupes_by_key = True
    deletes = "apply"

    def make_config(self, root: Path) -> dict[str, Any]:
        return {"path": str(root)}

    def read_back(self, config: dict[str, Any]) -> pa.Table:
        return _key_value_rows(config)


TestLedgerSinkThroughTheKit = sink_test_class(
    "kit-test-ledger",
    make_config=lambda root: {"path": str(root)},
    read_back=lambda config: read_back(Path(config["path"]), "parquet"),
)


class _RecordingTask(SinkTask):
    def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        self.context = context
        self.calls: list[tuple[str, Any]] = []

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        self.calls.append(("open", list(partitions)))

    def close(self, partitions: Sequence[TopicPartition]) -> None:
        self.calls.append(("close", list(partitions)))

    def put(self, batch: RecordBatch) -> None:
        self.calls.append(("put", (batch.topic, batch.partition)))
        self.context.request_commit()

    def flush(self, positions: Sequence[Position]) -> Sequence[Position] | None:
        self.calls.append(("flush", [p.offset["offset"] for p in positions]))
        return None

    def stop(self) -> None:
        self.calls.append(("stop", None))


_sink("kit-test-recording", _RecordingTask)


def test_sink_driver_opens_before_the_first_put_and_closes_at_the_end(tmp_path: Path) -> None:
    def rows(partition: int, first_offset: int) -> list[RecordBatch]:
        return sink_batches(
            standard_rows(0, 4),
            topic="t",
            partition=partition,
            first_offset=first_offset,
            batch_rows=2,
        )

    sink = SinkDriver("kit-test-recording", {"path": str(tmp_path)})
    task = sink.task
    assert isinstance(task, _RecordingTask)
    p0, p1 = rows(0, 0), rows(1, 10)
    sink.put_all(p0 + p1)
    assert sink.flush(p0 + p1) == [p0[-1].positions[0], p1[-1].positions[0]]
    sink.close([TopicPartition("t", 1)])
    assert sink.flush(p0 + p1) == [p0[-1].positions[0]], "a closed partition was flushed"
    sink.stop()
    assert task.calls == [
        ("open", [TopicPartition("t", 0)]),
        ("put", ("t", 0)),
        ("put", ("t", 0)),
        ("open", [TopicPartition("t", 1)]),
        ("put", ("t", 1)),
        ("put", ("t", 1)),
        ("flush", [4, 14]),
        ("close", [TopicPartition("t", 1)]),
        ("flush", [4]),
        ("close", [TopicPartition("t", 0)]),
        ("stop", None),
    ]
    assert sink.commit_requests == 4
    crashed = SinkDriver("kit-test-recording", {"path": str(tmp_path)})
    crashed.put_all(p0)
    crashed.stop(close=False)
    assert isinstance(crashed.task, _RecordingTask)
    assert [name for name, _ in crashed.task.calls] == ["open", "put", "put", "stop"]
