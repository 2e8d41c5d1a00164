"""The connector conformance kit: the standard tests every connector runs.

A test module subclasses ``SourceConnectorTests`` (config spec, emitted schema, stop ->
resume -> exact count, position validity, schema change, missing key, duplicates; for a
source that declares ``resumable = False``, such as a polled device, live tests of arrival,
restart and stop instead of those of written input and resumes) or
``SinkConnectorTests`` (round trip, replay idempotence, no torn writes, schema change, missing
key, duplicates, deletes, rebalances, durable positions), naming the connector and how to
configure it in class attributes and methods::

    class TestCsvSource(SourceConnectorTests):
        connector = "csv"

        def make_config(self, root: Path) -> dict[str, Any]:
            return {"path": f"{root}/*.csv"}

``source_test_class(...)`` and ``sink_test_class(...)`` build the same subclasses from
callables, in one line. Tasks are driven directly, with an in-memory offset reader and error
reporter: no broker is needed.
"""

from omconnect.runtime.testing._memory_offsets import (
    CollectingErrorReporter,
    MemoryOffsetReader,
    ReportedRaw,
    ReportedRows,
)
from omconnect.runtime.testing._sink_suite import SinkConnectorTests, sink_test_class
from omconnect.runtime.testing._source_suite import SourceConnectorTests, source_test_class
from omconnect.runtime.testing._standard_rows import (
    STANDARD_COLUMNS,
    as_standard_table,
    ids_of,
    row_offsets,
    sink_batches,
    standard_rows,
    standard_rows_of,
)
from omconnect.runtime.testing._task_driver import SinkDriver, SourceDriver, partitions_of

__all__ = [
    "STANDARD_COLUMNS",
    "CollectingErrorReporter",
    "MemoryOffsetReader",
    "ReportedRaw",
    "ReportedRows",
    "SinkConnectorTests",
    "SinkDriver",
    "SourceConnectorTests",
    "SourceDriver",
    "as_standard_table",
    "ids_of",
    "partitions_of",
    "row_offsets",
    "sink_batches",
    "sink_test_class",
    "source_test_class",
    "standard_rows",
    "standard_rows_of",
]
