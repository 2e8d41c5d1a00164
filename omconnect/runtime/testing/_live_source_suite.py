"""The tests of a source without resumable positions (``SourceConnector.resumable = False``):
a device polled for its current values, a subscription that sees only what is published while
it listens. There is no input to write and read back exactly, and no resume to check, so these
tests drive the task continuously (``once`` false) against the live system that
``make_config`` names, and check what such a source promises instead:

- records arrive within ``arrival_limit`` seconds, each ``poll`` returns within
  ``poll_limit`` seconds, and every batch follows its schema (and its marks, if it has any,
  are valid);
- a restart on the positions the first run committed starts, delivers records, and repeats
  none of the first run's message ids (the runtime derives them from the marks: a source
  whose marks restart from the same values on every run, or that has none, would give new
  records old ids, and a broker that drops duplicate ids would drop them);
- ``stop`` ends the task cleanly, before any poll and after some;
- under ``once`` the task ends (``poll`` returns None) within the limit.

For every other source these tests are skipped: the resume tests cover it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from omconnect.connectors.api import RecordBatch
from omconnect.runtime.testing._memory_offsets import MemoryOffsetReader
from omconnect.runtime.testing._source_base import (
    SourceTestsBase,
    check_marks,
    check_values_follow_schema,
    rows_of,
)
from omconnect.runtime.testing._task_driver import SourceDriver
from omconnect.runtime.worker.message_ids import MessageIdDeriver


class LiveSourceTests(SourceTestsBase):
    """The tests of a source without resumable positions (see the module docstring)."""

    live_records: ClassVar[int] = 3
    """How many records the live tests wait for in each run."""
    arrival_limit: ClassVar[float] = 20.0
    """The seconds those records may take to arrive."""
    poll_limit: ClassVar[float] = 5.0
    """The longest one ``poll`` may block (the lifecycle says about a second)."""

    def _require_live(self) -> None:
        if self._resumable():
            pytest.skip(f"source {self.connector!r} is resumable: the resume tests cover it")

    def _poll_live(self, source: SourceDriver) -> list[RecordBatch]:
        """Batches until ``live_records`` rows arrived (or the limit passed)."""
        batches = source.poll_for(self.live_records, self.arrival_limit)
        assert source.longest_poll <= self.poll_limit, (
            f"one poll blocked for {source.longest_poll:.1f}s; poll must return within about "
            "a second (None when nothing arrived)"
        )
        return batches

    def test_records_arrive_in_time_and_follow_their_schema(self, tmp_path: Path) -> None:
        self._require_live()
        source = self._driver(self._config(self._root(tmp_path)), once=False)
        try:
            batches = self._poll_live(source)
        finally:
            source.stop()
        assert rows_of(batches) >= self.live_records, (
            f"{rows_of(batches)} records arrived in {self.arrival_limit:g}s, expected "
            f"{self.live_records}"
        )
        last_offsets: dict[str, Any] = {}
        for batch in batches:
            check_values_follow_schema(batch)
            if batch.marks:
                check_marks(batch, last_offsets, self.offset_order)

    def test_restart_delivers_new_records_despite_its_stored_positions(
        self, tmp_path: Path
    ) -> None:
        self._require_live()
        config = self._config(self._root(tmp_path))
        offsets = MemoryOffsetReader()
        runs: list[set[str]] = []
        for run in ("first", "restarted"):
            source = self._driver(config, offsets, once=False)
            ids = MessageIdDeriver(offsets.get)
            seen: set[str] = set()
            try:
                for batch in self._poll_live(source):
                    # As the runtime does: ids the source set itself, else derived ones.
                    carried = batch.carried_message_ids
                    own = carried if carried is not None else ids.ids(batch)
                    array = own if isinstance(own, pa.StringArray) else own.to_array()
                    seen.update(array.to_pylist())
                    source.commit(batch.positions)
            finally:
                source.stop()
            assert seen, f"the {run} run delivered no record in {self.arrival_limit:g}s" + (
                " after starting on its own committed positions" if runs else ""
            )
            runs.append(seen)
        repeated = runs[0] & runs[1]
        assert not repeated, (
            f"the restarted run's records repeat {len(repeated)} message ids of the first run: "
            "mark batches with positions that differ from run to run (the time of a reading), "
            "or set RecordBatch.message_ids"
        )

    def test_stop_ends_the_task_cleanly(self, tmp_path: Path) -> None:
        self._require_live()
        config = self._config(self._root(tmp_path))
        self._driver(config, once=False).stop()
        source = self._driver(config, once=False)
        try:
            source.poll_for(1, self.arrival_limit)
        finally:
            source.stop()

    def test_once_ends_in_time(self, tmp_path: Path) -> None:
        self._require_live()
        source = self._driver(self._config(self._root(tmp_path)), once=True)
        deadline = time.monotonic() + self.arrival_limit
        try:
            while source.poll() is not None:
                assert time.monotonic() < deadline, (
                    f"under once, poll still returned records after {self.arrival_limit:g}s: "
                    "it must return None when it has read what there is now"
                )
        finally:
            source.stop()
