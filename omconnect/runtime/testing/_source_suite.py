"""``SourceConnectorTests``: the standard tests of a source connector, as a pytest base class.

A connector's test module subclasses it, and pytest collects the subclass (the base itself is
not collected: its name does not start with ``Test``)::

    class TestCsvSource(SourceConnectorTests):
        connector = "csv"

        def make_config(self, root: Path) -> dict[str, Any]:
            return {"path": f"{root}/*.csv"}

        def write_rows(self, root: Path, rows: pa.Table) -> None:
            write_csv(root, rows)

Per-connector knowledge comes in as methods, so databases, CDC and object stores use the same
tests as files:

- ``make_config(root)`` gives the connector's options for data living under ``root`` (a
  fresh directory: files go there, or it names a database schema, a bucket prefix ...).
- ``write_rows(root, rows)`` adds ``rows`` (a ``pyarrow.Table``) to that data as a new unit
  (a file, an insert) that sorts after the units written before. Not overridden, the tests
  that need data are skipped.
- ``offset_order(offset)`` is a sort key of the connector's offsets; overridden, marks of one
  partition must strictly increase by it.
- ``emitted_rows(batch)`` is what the tests check of an emitted batch (by default the batch):
  a CDC source gives the rows inside its change events.

A source may emit several streams (batches with ``stream`` set, several batches per poll):
counts are then checked per stream, and no partition of a position may be shared by two
streams (each stream resumes from its own positions). ``source_test_class(...)`` builds the
same subclass from callables.

A source without resumable positions (``SourceConnector.resumable = False``: a polled device,
a live subscription) cannot meet the tests of written input and resumes: they are skipped for
it, and the live tests of ``_live_source_suite`` run instead, against the system that
``make_config`` names (``write_rows`` is not needed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from omconnect.connectors.api import ConnectorError, Position, RecordBatch
from omconnect.runtime.testing._live_source_suite import LiveSourceTests
from omconnect.runtime.testing._memory_offsets import MemoryOffsetReader
from omconnect.runtime.testing._source_base import (
    OffsetOrder,
    check_marks,
    check_values_follow_schema,
)
from omconnect.runtime.testing._spec_checks import (
    check_spec_is_described,
    check_unknown_key_refused,
)
from omconnect.runtime.testing._standard_rows import (
    EXTRA_COLUMN,
    STANDARD_COLUMNS,
    as_standard_table,
    ids_of,
    standard_rows,
)
from omconnect.runtime.testing._task_driver import spec_class
from omconnect.schemas.record import partition_id

MakeConfig = Callable[[Path], dict[str, Any]]
WriteRows = Callable[[Path, pa.Table], None]


class SourceConnectorTests(LiveSourceTests):
    """The standard source tests; subclass it with ``connector`` and ``make_config`` set."""

    def _write_standard(self, root: Path) -> None:
        half = self.rows // 2
        self.write_rows(root, standard_rows(0, half))
        self.write_rows(root, standard_rows(half, self.rows - half))

    def test_spec_fields_are_described(self) -> None:
        check_spec_is_described(spec_class("source", self.connector))

    def test_spec_refuses_unknown_keys(self, tmp_path: Path) -> None:
        config = self._config(self._root(tmp_path))
        check_unknown_key_refused(spec_class("source", self.connector), config)

    def test_emitted_batches_match_their_schema_and_the_input(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        self._write_standard(root)
        source = self._driver(self._config(root))
        batches = source.read_to_end()
        source.stop()
        assert batches, "the source emitted nothing"
        for batch in batches:
            check_values_follow_schema(batch)
        assert as_standard_table(batches).equals(as_standard_table(standard_rows(0, self.rows)))

    def test_stop_then_resume_reads_every_row_exactly_once(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        self._write_standard(root)
        config = self._config(root)
        everything = self._driver(config).read_to_end()
        expected = _rows_per_stream(everything)
        assert sorted(ids_of(everything)) == list(range(self.rows)), "a full read is not exact"
        total_batches = len(everything)
        for committed_batches in sorted({1, total_batches // 2, total_batches - 1}):
            offsets = MemoryOffsetReader()
            first = self._driver(config, offsets)
            delivered: list[RecordBatch] = []
            for _ in range(committed_batches):
                polled = first.poll()
                assert polled is not None, "the source ended early"
                for batch in polled:
                    delivered.append(batch)
                    first.commit(batch.positions)
            # Polled but never acknowledged: lost in the crash, so read again on resume.
            first.poll()
            first.stop()
            second = self._driver(config, offsets)
            delivered.extend(second.read_to_end())
            second.stop()
            assert sorted(ids_of(delivered)) == list(range(self.rows)), (
                f"after committing {committed_batches} batches, the resumed run did not "
                "deliver every row exactly once"
            )
            assert _rows_per_stream(delivered) == expected, (
                f"after committing {committed_batches} batches, the resumed run did not "
                "deliver every row of every stream exactly once"
            )
        offsets = MemoryOffsetReader()
        done = self._driver(config, offsets)
        for batch in done.read_to_end():
            done.commit(batch.positions)
        done.stop()
        again = self._driver(config, offsets).read_to_end()
        assert not again, "a run after everything was committed read rows again"

    def test_streams_keep_their_own_positions(self, tmp_path: Path) -> None:
        """Positions of different streams never share a partition: resuming one stream
        must not move another."""
        self._require_positions()
        root = self._root(tmp_path)
        self._write_standard(root)
        batches = self._driver(self._config(root)).read_to_end()
        stream_of: dict[str, str | None] = {}
        for batch in batches:
            assert batch.stream is None or isinstance(batch.stream, str)
            for mark in batch.marks:
                key = partition_id(mark.position.partition)
                owner = stream_of.setdefault(key, batch.stream)
                assert owner == batch.stream, (
                    f"streams {owner!r} and {batch.stream!r} share the position partition "
                    f"{dict(mark.position.partition)}"
                )

    def test_commit_then_resume_continues_after_the_committed_positions(
        self, tmp_path: Path
    ) -> None:
        """``commit`` with the positions of everything polled so far is accepted between
        polls, the task goes on where it was, and a task resumed after the commit starts
        right after those positions."""
        self._require_positions()
        root = self._root(tmp_path)
        self._write_standard(root)
        config = self._config(root)
        offsets = MemoryOffsetReader()
        task = self._driver(config, offsets)
        polled: list[RecordBatch] = []
        for _ in range(3):
            more = task.poll()
            if more is None:
                break
            polled.extend(more)
        assert polled, "the source emitted nothing"
        task.commit(_last_positions(polled))
        rest = task.read_to_end()
        task.stop()
        assert sorted(ids_of(polled + rest)) == list(range(self.rows)), (
            "after commit(), the task did not go on exactly where it was"
        )
        resumed = self._driver(config, offsets)
        after = resumed.read_to_end()
        resumed.stop()
        assert _rows_per_stream(after) == _rows_per_stream(rest), (
            "a task resumed after commit() did not continue exactly after the committed positions"
        )

    def test_positions_are_valid(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        self._write_standard(root)
        batches = self._driver(self._config(root)).read_to_end()
        last_offsets: dict[str, Mapping[str, Any]] = {}
        for batch in batches:
            check_marks(batch, last_offsets, self.offset_order)

    def test_schema_change_between_units(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        half = self.rows // 2
        self.write_rows(root, standard_rows(0, half))
        self.write_rows(root, standard_rows(half, self.rows - half, extra_column=True))
        batches = self._driver(self._config(root)).read_to_end()
        for batch in batches:
            check_values_follow_schema(batch)
        assert sorted(ids_of(batches)) == list(range(self.rows))
        with_extra = [b for b in batches if EXTRA_COLUMN in b.values.schema.names]
        assert sorted(ids_of(with_extra)) == list(range(half, self.rows))
        extra = as_standard_table(with_extra, (*STANDARD_COLUMNS, EXTRA_COLUMN))
        assert extra.equals(
            as_standard_table(
                standard_rows(half, self.rows - half, extra_column=True), extra.column_names
            )
        )

    def test_key_becomes_the_schema_key(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        if "key" not in spec_class("source", self.connector).model_fields:
            pytest.skip(f"source {self.connector!r} has no key option")
        self._write_standard(root)
        batches = self._driver(self._config(root, key=["id"])).read_to_end()
        assert batches
        for batch in batches:
            assert batch.schema.key_fields == ("id",)
            keys = batch.key_columns()
            assert keys is not None and keys.column("id").equals(batch.values.column("id"))

    def test_missing_key_is_a_clear_error(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        if "key" not in spec_class("source", self.connector).model_fields:
            pytest.skip(f"source {self.connector!r} has no key option")
        self._write_standard(root)
        config = self._config(root, key=["no_such_column"])
        with pytest.raises(ConnectorError, match="no_such_column"):
            self._driver(config).read_to_end()

    def test_duplicate_input_is_emitted_with_distinct_positions(self, tmp_path: Path) -> None:
        self._require_positions()
        root = self._root(tmp_path)
        self.write_rows(root, standard_rows(0, self.rows // 2))
        self.write_rows(root, standard_rows(0, self.rows // 2))
        batches = self._driver(self._config(root)).read_to_end()
        assert sorted(ids_of(batches)) == sorted(list(range(self.rows // 2)) * 2)
        seen = set()
        for batch in batches:
            for mark in batch.marks:
                ident = (
                    partition_id(mark.position.partition),
                    partition_id(mark.position.offset),
                )
                assert ident not in seen, f"two marks at the same position {mark.position}"
                seen.add(ident)


def source_test_class(
    connector_name: str,
    *,
    make_config: MakeConfig,
    write_rows: WriteRows | None = None,
    offset_order: OffsetOrder | None = None,
    rows: int = 1_000,
    batch_size: int = 100,
) -> type[SourceConnectorTests]:
    """A ``SourceConnectorTests`` subclass for the source ``connector_name``.

    Args:
        connector_name: the registered source name.
        make_config: options for data under a fresh directory.
        write_rows: adds rows as a new unit of input (see the module docstring).
        offset_order: a sort key of the connector's offsets; given, marks of one partition
            must strictly increase by it.
        rows: how many rows the data tests write (in two units).
        batch_size: set as ``batch_size`` when the spec has that option, so that the resume
            tests can stop between batches.
    """
    attributes: dict[str, Any] = {
        "connector": connector_name,
        "rows": rows,
        "batch_size": batch_size,
        "make_config": staticmethod(make_config),
    }
    if write_rows is not None:
        attributes["write_rows"] = staticmethod(write_rows)
    if offset_order is not None:
        attributes["offset_order"] = staticmethod(offset_order)
    return type(f"SourceConformance_{connector_name}", (SourceConnectorTests,), attributes)


def _rows_per_stream(batches: Sequence[RecordBatch]) -> Counter[tuple[str | None, int]]:
    """How many times each (stream, id) was delivered."""
    return Counter((b.stream, i) for b in batches for i in ids_of([b]))


def _last_positions(batches: Sequence[RecordBatch]) -> list[Position]:
    last: dict[str, Position] = {}
    for batch in batches:
        for position in batch.positions:
            last[partition_id(position.partition)] = position
    return list(last.values())
