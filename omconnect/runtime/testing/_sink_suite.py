"""``SinkConnectorTests``: the standard tests of a sink connector, as a pytest base class.

A connector's test module subclasses it, and pytest collects the subclass (the base itself is
not collected: its name does not start with ``Test``)::

    class TestCsvSink(SinkConnectorTests):
        connector = "csv"
        deletes = "skip"

        def make_config(self, root: Path) -> dict[str, Any]:
            return {"path": str(root)}

        def read_back(self, config: dict[str, Any]) -> pa.Table:
            return read_csv_files(config["path"])

Per-connector knowledge comes in as methods and class attributes:

- ``make_config(root)`` gives the sink's options writing under ``root`` (a fresh directory,
  or a database/bucket named after it).
- ``read_back(config)`` returns everything the sink has made visible, as one table (columns
  of differently shaped rows unified, missing values null). It must never see a half-written
  unit: the torn-write tests rely on it reading only what readers would read.
- ``dedupes_by_key`` and ``deletes`` declare what the sink does with duplicates and deletes.

Batches come from topic ``orders`` with marks ``{"topic", "partition"}`` ->
``{"offset": next}``, as the runtime sends them, and go through ``SinkDriver``, which opens
partitions before their first rows and passes only open partitions' positions to ``flush``.

Beyond round trips and replays, the suite checks the parts of the lifecycle that keep
delivery exact: deletes (tombstones) behave as declared (``deletes``); a closed partition's
rows never become visible after the close; what ``flush`` returns as durable is visible; and a
sink whose task has ``stores_positions`` delivers exactly once from its stored positions.
``sink_test_class(...)`` builds the same subclass from callables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from omconnect.connectors.api import ConnectorError, Position, RecordBatch, TopicPartition
from omconnect.runtime.testing._spec_checks import (
    check_spec_is_described,
    check_unknown_key_refused,
)
from omconnect.runtime.testing._standard_rows import (
    EXTRA_COLUMN,
    as_standard_table,
    ids_of,
    row_offsets,
    sink_batches,
    standard_rows,
    standard_rows_of,
)
from omconnect.runtime.testing._task_driver import SinkDriver, spec_class
from omconnect.schemas.record import partition_id

MakeConfig = Callable[[Path], dict[str, Any]]
ReadBack = Callable[[dict[str, Any]], pa.Table]
DeleteBehaviour = Literal["skip", "mark", "apply"]

TOPIC = "orders"
DELETED_COLUMN = "__deleted"

_Item = TypeVar("_Item")


class SinkConnectorTests:
    """The standard sink tests; subclass it with ``connector``, ``make_config`` and
    ``read_back`` set."""

    connector: ClassVar[str]
    """The registered sink name."""
    dedupes_by_key: ClassVar[bool] = False
    """The sink upserts by key (one row per ``id`` survives duplicates); otherwise it appends
    (every delivered row is kept)."""
    deletes: ClassVar[DeleteBehaviour | None] = None
    """What the sink, configured by ``make_config``, does with a delete (tombstone) of a key:
    ``skip`` writes nothing for it; ``mark`` writes a row with the key and a boolean
    ``__deleted`` column, true for deletes and false for every other row (Debezium's
    rewrite); ``apply`` removes the key's rows. None: not declared, so only "deletes do not
    fail the sink" is checked."""
    rows: ClassVar[int] = 1_000
    """How many rows each test writes."""
    batch_rows: ClassVar[int] = 100
    """Rows per batch put."""

    def make_config(self, root: Path) -> dict[str, Any]:
        """The sink's options for writing under ``root``, a fresh directory."""
        raise NotImplementedError(f"{type(self).__name__}: define make_config(root)")

    def read_back(self, config: dict[str, Any]) -> pa.Table:
        """Everything the sink configured by ``config`` has made visible, as one table."""
        raise NotImplementedError(f"{type(self).__name__}: define read_back(config)")

    def _config(self, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
        root = tmp_path / "sink"
        root.mkdir(parents=True, exist_ok=True)
        return {**self.make_config(root), **overrides}

    def _batches(
        self, rows: pa.Table, partition: int = 0, first_offset: int = 0, **options: Any
    ) -> list[RecordBatch]:
        """``rows`` as the runtime delivers them from ``TOPIC`` partition ``partition``, at
        offsets from ``first_offset``, keyed by ``id`` (``options``: see ``sink_batches``)."""
        return sink_batches(
            rows,
            topic=TOPIC,
            partition=partition,
            first_offset=first_offset,
            batch_rows=self.batch_rows,
            **options,
        )

    def _halves_on_two_partitions(self) -> tuple[list[RecordBatch], list[RecordBatch]]:
        """The first half of the rows on partition 0, the rest on partition 1."""
        half = self.rows // 2
        first, rest = standard_rows(0, half), standard_rows(half, self.rows - half)
        return self._batches(first), self._batches(rest, partition=1)

    def _with_deletes(self) -> tuple[list[RecordBatch], list[int], list[int], list[int]]:
        """Rows ``0 .. rows/2``, then new rows mixed with deletes of some of those and of
        two keys never written; returns the batches, the ids inserted, the ids deleted that
        had rows, and the ids deleted that had none."""
        half = self.rows // 2
        deleted = list(range(2, half, 5))
        unknown = [self.rows * 10, self.rows * 10 + 1]
        changes = _interleaved(
            [(i, False) for i in range(half, self.rows)], [(i, True) for i in deleted + unknown]
        )
        mixed = self._batches(
            standard_rows_of([i for i, _ in changes]),
            first_offset=half,
            deletes=[is_delete for _, is_delete in changes],
        )
        written = self._batches(standard_rows(0, half))
        return written + mixed, list(range(self.rows)), deleted, unknown

    def _read_ids(self, config: dict[str, Any]) -> list[int]:
        """The id of every visible row, in the order ``read_back`` gives them."""
        return _visible_ids(self.read_back(config))

    def _assert_every_row_once(
        self, ids: Sequence[int], problem: str = "rows are missing or duplicated"
    ) -> None:
        assert sorted(ids) == list(range(self.rows)), problem

    def _assert_only_whole_rows(self, config: dict[str, Any]) -> None:
        """No visible row twice, none that was not sent: nothing half-written shows."""
        visible = ids_of(self.read_back(config))
        assert len(set(visible)) == len(visible) and set(visible) <= set(range(self.rows))

    def _flush_checked(
        self, sink: SinkDriver, config: dict[str, Any], sent: list[RecordBatch], when: str
    ) -> None:
        """Flush ``sent`` and check that what ``flush`` says is durable is visible now."""
        durable = sink.flush(sent)
        _check_claims(durable, sink.flushed, sent, set(self._read_ids(config)), when)

    def test_spec_fields_are_described(self) -> None:
        check_spec_is_described(spec_class("sink", self.connector))

    def test_spec_refuses_unknown_keys(self, tmp_path: Path) -> None:
        check_unknown_key_refused(spec_class("sink", self.connector), self._config(tmp_path))

    def test_flushed_rows_read_back_unchanged(self, tmp_path: Path) -> None:
        config = self._config(tmp_path)
        p0, p1 = self._halves_on_two_partitions()
        _deliver(SinkDriver(self.connector, config), p0 + p1)
        assert as_standard_table(self.read_back(config)).equals(
            as_standard_table(standard_rows(0, self.rows))
        )

    def test_replay_after_a_crash_leaves_no_duplicates(self, tmp_path: Path) -> None:
        config = self._config(tmp_path)
        sent = self._batches(standard_rows(0, self.rows), first_offset=1_000)
        committed, flushed_uncommitted, unflushed = sent[:3], sent[3:6], sent[6:]
        crashed = SinkDriver(self.connector, config)
        _deliver(crashed, committed, stop=False)
        _deliver(crashed, flushed_uncommitted, stop=False)
        crashed.put_all(unflushed)
        # The crash: no stop(), no flush. The runtime replays after the last commit (a
        # sink that stores positions: after those), batched differently this time.
        restarted = SinkDriver(self.connector, config)
        stores = restarted.task.stores_positions
        resume_at = restarted.stored_positions() if stores else committed[-1].positions
        _deliver(restarted, _replay_from(sent, resume_at, self.batch_rows * 2 + 7))
        self._assert_every_row_once(self._read_ids(config), "replay left duplicates or lost rows")

    def test_nothing_torn_is_visible_before_flush(self, tmp_path: Path) -> None:
        config = self._config(tmp_path)
        sent = self._batches(standard_rows(0, self.rows))
        sink = SinkDriver(self.connector, config)
        sink.put_all(sent)
        self._assert_only_whole_rows(config)
        sink.stop()
        self._assert_only_whole_rows(config)
        _deliver(SinkDriver(self.connector, config), sent)
        self._assert_every_row_once(self._read_ids(config))

    def test_schema_change_keeps_every_row(self, tmp_path: Path) -> None:
        config = self._config(tmp_path)
        half = self.rows // 2
        before = self._batches(standard_rows(0, half))
        after = self._batches(
            standard_rows(half, self.rows - half, extra_column=True), first_offset=half
        )
        _deliver(SinkDriver(self.connector, config), before + after)
        table = self.read_back(config)
        self._assert_every_row_once(ids_of(table))
        assert EXTRA_COLUMN in table.column_names, "the added column was lost"
        with_note = table.filter(pc.is_valid(table.column(EXTRA_COLUMN)))
        assert sorted(ids_of(with_note)) == list(range(half, self.rows))

    def test_missing_key(self, tmp_path: Path) -> None:
        """With a ``key`` option, a key column absent from the rows is a clear error;
        without one, rows without any key are written in full."""
        if "key" in spec_class("sink", self.connector).model_fields:
            config = self._config(tmp_path, key=["no_such_column"])
            with pytest.raises(ConnectorError, match="no_such_column"):
                sink = SinkDriver(self.connector, config)
                _deliver(sink, self._batches(standard_rows(0, self.rows)), stop=False)
            return
        config = self._config(tmp_path)
        sent = self._batches(standard_rows(0, self.rows), key_fields=())
        assert all(b.key_columns() is None for b in sent)
        _deliver(SinkDriver(self.connector, config), sent)
        self._assert_every_row_once(self._read_ids(config))

    def test_duplicates(self, tmp_path: Path) -> None:
        """The same rows delivered twice (at other offsets): an upserting sink keeps one
        per key, an appending sink keeps both."""
        config = self._config(tmp_path)
        rows = standard_rows(0, self.rows)
        sent = self._batches(rows) + self._batches(rows, first_offset=self.rows)
        _deliver(SinkDriver(self.connector, config), sent)
        copies = 1 if self.dedupes_by_key else 2
        assert sorted(self._read_ids(config)) == sorted(list(range(self.rows)) * copies)

    def test_deletes_do_not_fail_the_sink(self, tmp_path: Path) -> None:
        """Batches where some rows are deletes (a key, null values) are accepted."""
        sent, *_ = self._with_deletes()
        sink = _deliver(SinkDriver(self.connector, self._config(tmp_path)), sent)
        assert not sink.errors.reports, (
            f"the sink reported rows of a batch with deletes as failures: "
            f"{[str(r.error) for r in sink.errors.reports][:3]}"
        )

    def test_deletes_follow_the_declared_behaviour(self, tmp_path: Path) -> None:
        if self.deletes is None:
            pytest.skip(f"sink {self.connector!r}: no deletes behaviour declared")
        config = self._config(tmp_path)
        sent, inserted, deleted, unknown = self._with_deletes()
        _deliver(SinkDriver(self.connector, config), sent)
        table = self.read_back(config)
        ids = _visible_ids(table)
        if self.deletes == "mark":
            assert DELETED_COLUMN in table.column_names, f"no {DELETED_COLUMN} column"
            flags = table.column(DELETED_COLUMN).cast(pa.bool_())
            assert flags.null_count == 0, f"rows with a null {DELETED_COLUMN}"
            kept = [i for i in inserted if not self.dedupes_by_key or i not in deleted]
            assert sorted(ids_of(table.filter(flags))) == sorted(deleted + unknown), (
                f"rows with {DELETED_COLUMN} true are not the deleted keys"
            )
            assert sorted(ids_of(table.filter(pc.invert(flags)))) == kept, (
                f"rows with {DELETED_COLUMN} false are not the rows written"
            )
        elif self.deletes == "skip":
            assert sorted(ids) == inserted, "deletes were written (deletes='skip')"
        else:
            assert sorted(ids) == sorted(set(inserted) - set(deleted)), (
                "deleted keys are still visible (deletes='apply')"
            )

    def test_a_closed_partition_is_dropped(self, tmp_path: Path) -> None:
        """A rebalance: partition 1 is closed without a flush; what was buffered for it
        never becomes visible, partition 0 goes on."""
        config = self._config(tmp_path)
        third = self.rows // 3
        before = self._batches(standard_rows(0, third))
        revoked = self._batches(standard_rows(third, third), partition=1)
        after = self._batches(standard_rows(2 * third, self.rows - 2 * third), first_offset=third)
        sink = SinkDriver(self.connector, config)
        sink.put_all(_interleaved(before, revoked))
        sink.close([TopicPartition(TOPIC, 1)])
        visible_at_close = set(self._read_ids(config))
        sink.put_all(after)
        self._flush_checked(sink, config, before + revoked + after, "flush after a close")
        sink.stop()
        final = set(self._read_ids(config))
        leaked = sorted((final & set(ids_of(revoked))) - visible_at_close)
        assert not leaked, (
            f"{len(leaked)} row(s) of the closed partition became visible after the close "
            f"(ids {leaked[:5]})"
        )
        missing = sorted(set(ids_of(before + after)) - final)
        assert not missing, f"rows of the open partition are missing: {missing[:5]}"

    def test_flush_claims_only_what_is_visible(self, tmp_path: Path) -> None:
        """What ``flush`` returns as durable is readable when it returns."""
        config = self._config(tmp_path)
        p0, p1 = self._halves_on_two_partitions()
        first = p0[: len(p0) // 2] + p1[: len(p1) // 2]
        second = p0[len(p0) // 2 :] + p1[len(p1) // 2 :]
        sink = SinkDriver(self.connector, config)
        sink.put_all(first)
        self._flush_checked(sink, config, first, "first flush")
        sink.put_all(second)
        self._flush_checked(sink, config, first + second, "second flush")
        sink.stop()

    def test_stored_positions_give_exactly_once(self, tmp_path: Path) -> None:
        """A sink that stores positions: they are the flushed ones, and replays from them
        (after a crash, after a rewind) leave every row exactly once."""
        config = self._config(tmp_path)
        crashed = SinkDriver(self.connector, config)
        if not crashed.task.stores_positions:
            pytest.skip(f"sink {self.connector!r} does not store positions")
        sent = self._batches(standard_rows(0, self.rows), first_offset=1_000)
        flushed, unflushed = sent[:3], sent[3:6]
        crashed.put_all(flushed)
        _flush_storing(crashed, flushed)
        crashed.put_all(unflushed)
        # The crash: no flush, no stop. The runtime seeks to the stored positions.
        restarted = SinkDriver(self.connector, config)
        replay = _replay_from(sent, restarted.stored_positions(), self.batch_rows * 2 + 7)
        restarted.put_all(replay[:2])
        # A failed flush: close everything, redeliver from the stored positions.
        restarted.close(list(restarted.opened))
        replay = _replay_from(sent, restarted.stored_positions(), self.batch_rows + 3)
        restarted.put_all(replay)
        _flush_storing(restarted, replay)
        restarted.stop()
        self._assert_every_row_once(
            self._read_ids(config),
            "a replay from the stored positions left duplicates or lost rows",
        )


def sink_test_class(
    connector_name: str,
    *,
    make_config: MakeConfig,
    read_back: ReadBack,
    dedupes_by_key: bool = False,
    deletes: DeleteBehaviour | None = None,
    rows: int = 1_000,
    batch_rows: int = 100,
) -> type[SinkConnectorTests]:
    """A ``SinkConnectorTests`` subclass for the sink ``connector_name``.

    Args:
        connector_name: the registered sink name.
        make_config: options for writing under a fresh directory.
        read_back: everything visible in the target, as one table.
        dedupes_by_key: the sink upserts by key (see ``SinkConnectorTests.dedupes_by_key``).
        deletes: what the sink does with a delete (see ``SinkConnectorTests.deletes``).
        rows: how many rows each test writes.
        batch_rows: rows per batch put.
    """
    attributes: dict[str, Any] = {
        "connector": connector_name,
        "make_config": staticmethod(make_config),
        "read_back": staticmethod(read_back),
        "dedupes_by_key": dedupes_by_key,
        "deletes": deletes,
        "rows": rows,
        "batch_rows": batch_rows,
    }
    return type(f"SinkConformance_{connector_name}", (SinkConnectorTests,), attributes)


def _deliver(sink: SinkDriver, batches: list[RecordBatch], *, stop: bool = True) -> SinkDriver:
    """``sink`` after it put ``batches`` and flushed them, then (``stop``) ended cleanly."""
    sink.put_all(batches)
    sink.flush(batches)
    if stop:
        sink.stop()
    return sink


def _flush_storing(sink: SinkDriver, batches: list[RecordBatch]) -> None:
    """Flush ``batches``; the positions the sink stores must be those flush made durable."""
    durable = sink.flush(batches)
    assert _offsets(sink.stored_positions()) == _offsets(durable), (
        "after a flush, stored_positions() is not what flush made durable"
    )


def _interleaved(first: Sequence[_Item], second: Sequence[_Item]) -> list[_Item]:
    """The items of ``first`` and ``second`` taken in turn, then the rest of the longer."""
    return [item for pair in zip_longest(first, second) for item in pair if item is not None]


def _visible_ids(table: pa.Table) -> list[int]:
    ids = table.column("id")
    assert ids.null_count == 0, f"{ids.null_count} visible row(s) have no id (a delete written?)"
    return ids_of(table)


def _offsets(positions: Sequence[Position]) -> dict[str, int]:
    return {partition_id(p.partition): int(p.offset["offset"]) for p in positions}


def _check_claims(
    durable: Sequence[Position],
    given: Sequence[Position],
    sent: Sequence[RecordBatch],
    visible: Collection[int],
    when: str,
) -> None:
    """Every position ``durable`` names is at most the one ``given`` to flush for that
    partition, and every row put before it is ``visible``."""
    limits = _offsets(given)
    rows = row_offsets(sent)
    for position in durable:
        key = partition_id(position.partition)
        claimed = int(position.offset["offset"])
        where = dict(position.partition)
        if key in limits:
            assert claimed <= limits[key], (
                f"{when}: flush returned offset {claimed} of {where}, beyond the "
                f"{limits[key]} it was given"
            )
        before = [i for offset, i in rows.get(key, []) if offset < claimed and i is not None]
        missing = sorted(i for i in before if i not in visible)
        assert not missing, (
            f"{when}: flush returned {where} -> offset {claimed} as durable, but "
            f"{len(missing)} row(s) before it are not visible (ids {missing[:5]})"
        )


def _replay_from(
    sent: Sequence[RecordBatch], stored: Sequence[Position], size: int
) -> list[RecordBatch]:
    """The rows of ``sent`` from the ``stored`` positions on (from the start of partitions
    without one), as the runtime redelivers them, in batches of ``size``."""
    start = _offsets(stored)
    partitions = {
        partition_id(m.position.partition): m.position.partition for b in sent for m in b.marks
    }
    replay: list[RecordBatch] = []
    for key, rows in row_offsets(sent).items():
        kept = [(offset, i) for offset, i in rows if offset >= start.get(key, 0)]
        if kept:
            replay += sink_batches(
                standard_rows_of([i for _, i in kept if i is not None]),
                topic=str(partitions[key]["topic"]),
                partition=int(partitions[key]["partition"]),
                first_offset=kept[0][0],
                batch_rows=size,
            )
    return replay
