"""What the source suites share: the connector under test, how a test configures and drives
it, and whether it declares resumable positions (``SourceConnector.resumable``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from omconnect.connectors.api import RecordBatch, lookup
from omconnect.runtime.testing._memory_offsets import MemoryOffsetReader
from omconnect.runtime.testing._task_driver import SourceDriver, spec_class
from omconnect.schemas.arrow import to_arrow_schema
from omconnect.schemas.record import partition_id

OffsetOrder = Callable[[Mapping[str, Any]], Any]


class SourceTestsBase:
    """The configuration of a source suite; ``SourceConnectorTests`` is the one to subclass."""

    connector: ClassVar[str]
    """The registered source name."""
    rows: ClassVar[int] = 1_000
    """How many rows the data tests write (in two units)."""
    batch_size: ClassVar[int] = 100
    """Set as ``batch_size`` when the spec has that option, so that the resume tests can stop
    between batches."""

    def make_config(self, root: Path) -> dict[str, Any]:
        """The connector's options for data under ``root``, a fresh directory."""
        raise NotImplementedError(f"{type(self).__name__}: define make_config(root)")

    def write_rows(self, root: Path, rows: pa.Table) -> None:
        """Adds ``rows`` under ``root`` as a new unit of input (see the module docstring)."""
        pytest.skip(f"source {self.connector!r}: no write_rows given")

    def offset_order(self, offset: Mapping[str, Any]) -> Any:
        """A sort key of ``offset``; None (the default): offsets have no order to check."""
        return None

    def emitted_rows(self, batch: RecordBatch) -> RecordBatch:
        """What the tests check of an emitted batch: its rows. The default is the batch
        itself; a CDC source gives the rows inside its change events (the ``after`` images,
        with the batch's marks and stream)."""
        return batch

    def _resumable(self) -> bool:
        """What the connector declares: ``SourceConnector.resumable``."""
        return bool(getattr(lookup("source", self.connector).cls, "resumable", True))

    def _require_positions(self) -> None:
        """Skip a test of resuming (and of reading written input to its end) for a source
        without resumable positions; the live tests cover it instead."""
        if not self._resumable():
            pytest.skip(
                f"source {self.connector!r} has no resumable positions (resumable = False): "
                "the live tests run instead"
            )

    def _driver(
        self,
        config: Mapping[str, Any],
        offsets: MemoryOffsetReader | None = None,
        once: bool = True,
    ) -> SourceDriver:
        return SourceDriver(self.connector, config, offsets, once=once, project=self.emitted_rows)

    def _root(self, tmp_path: Path) -> Path:
        root = tmp_path / "source"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _config(self, root: Path, **overrides: Any) -> dict[str, Any]:
        config = dict(self.make_config(root))
        if "batch_size" in spec_class("source", self.connector).model_fields:
            config.setdefault("batch_size", self.batch_size)
        config.update(overrides)
        return config


def check_values_follow_schema(batch: RecordBatch) -> None:
    """The batch's Arrow columns are those its omconnect schema says, with its types."""
    expected = to_arrow_schema(batch.schema)
    actual = batch.values.schema
    assert actual.names == expected.names, f"columns {actual.names} != schema {expected.names}"
    for got, want in zip(actual, expected, strict=True):
        assert got.type == want.type, (
            f"column {got.name}: {got.type} but the schema says {want.type}"
        )
    assert batch.stream is None or isinstance(batch.stream, str)


def check_marks(
    batch: RecordBatch,
    last_offsets: dict[str, Mapping[str, Any]],
    offset_order: OffsetOrder,
) -> None:
    """The batch's marks cover its rows in order, and no partition repeats an offset or (with
    ``offset_order``) goes back; ``last_offsets`` carries the offsets seen across batches."""
    assert batch.marks, "every batch must carry at least one position mark"
    previous_end = 0
    for mark in batch.marks:
        assert previous_end <= mark.end_row <= batch.num_rows, (
            f"mark end_row {mark.end_row} outside {previous_end}..{batch.num_rows}"
        )
        previous_end = mark.end_row
        key = partition_id(mark.position.partition)
        before = last_offsets.get(key)
        if before is not None:
            assert dict(before) != dict(mark.position.offset), f"position repeated: {mark.position}"
            earlier, later = offset_order(before), offset_order(mark.position.offset)
            if earlier is not None and later is not None:
                assert earlier < later, (
                    f"offsets of {dict(mark.position.partition)} went back: "
                    f"{dict(before)} then {dict(mark.position.offset)}"
                )
        last_offsets[key] = mark.position.offset
    assert batch.marks[-1].end_row == batch.num_rows, "rows after the last mark are not covered"


def rows_of(batches: Sequence[RecordBatch]) -> int:
    return sum(batch.num_rows for batch in batches)
