"""The conformance kit's source checks of streams and of ``commit``: sources that emit
several streams (lists of batches) pass; shared positions and a disturbing commit fail."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from omconnect.connectors.api import PollResult, Position, RecordBatch, register
from omconnect.connectors.files.csv import CsvSource, CsvSourceTask
from omconnect.runtime.testing import SourceDriver, source_test_class, standard_rows
from tests.support.file_formats import write_csv


class _StreamPerFileCsvTask(CsvSourceTask):
    """Each file is a stream of its own, and every poll returns a list of batches."""

    def poll(self) -> PollResult:
        batch = super().poll()
        if not isinstance(batch, RecordBatch):
            return batch
        name = Path(str(batch.marks[0].position.partition["file"])).stem
        return [RecordBatch(**{**vars(batch), "stream": name})]


class _StreamPerFileCsvSource(CsvSource):
    name = "kit-test-stream-per-file-csv"
    task_class = _StreamPerFileCsvTask


class _AlternatingStreamCsvTask(CsvSourceTask):
    """Puts batches of one file in two streams: their positions share a partition."""

    def poll(self) -> PollResult:
        batch = super().poll()
        if not isinstance(batch, RecordBatch):
            return batch
        self.polls = getattr(self, "polls", 0) + 1
        return [RecordBatch(**{**vars(batch), "stream": "odd" if self.polls % 2 else "even"})]


class _AlternatingStreamCsvSource(CsvSource):
    name = "kit-test-alternating-stream-csv"
    task_class = _AlternatingStreamCsvTask


class _CommitDropsFileCsvTask(CsvSourceTask):
    """``commit`` drops the file being read: the rest of it is never delivered."""

    def commit(self, positions: Sequence[Position]) -> None:
        self._pass = None


class _CommitDropsFileCsvSource(CsvSource):
    name = "kit-test-commit-drops-file-csv"
    task_class = _CommitDropsFileCsvTask


register(_StreamPerFileCsvSource)
register(_AlternatingStreamCsvSource)
register(_CommitDropsFileCsvSource)


def _csv_config(root: Path) -> dict[str, Any]:
    return {"path": f"{root}/*.csv"}


TestStreamPerFileSourceThroughTheKit = source_test_class(
    "kit-test-stream-per-file-csv", make_config=_csv_config, write_rows=write_csv
)


def test_source_driver_accepts_lists_of_batches(tmp_path: Path) -> None:
    write_csv(tmp_path, standard_rows(0, 3))
    (batch,) = SourceDriver("kit-test-stream-per-file-csv", _csv_config(tmp_path)).read_to_end()
    assert batch.stream == "part-00000"


def test_streams_that_share_a_position_partition_fail_the_streams_test(tmp_path: Path) -> None:
    suite = source_test_class(
        "kit-test-alternating-stream-csv",
        make_config=_csv_config,
        write_rows=write_csv,
        batch_size=100,
    )()
    with pytest.raises(AssertionError, match="share the position partition"):
        suite.test_streams_keep_their_own_positions(tmp_path)


def test_a_source_disturbed_by_commit_fails_the_commit_test(tmp_path: Path) -> None:
    suite = source_test_class(
        "kit-test-commit-drops-file-csv", make_config=_csv_config, write_rows=write_csv
    )()
    with pytest.raises(AssertionError, match="after commit"):
        suite.test_commit_then_resume_continues_after_the_committed_positions(tmp_path)
