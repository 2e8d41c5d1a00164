"""The connector conformance kit: the standard tests every connector runs, in one line.

``TestCsvSource = source_test_class("csv", make_config=..., write_rows=...)`` in a test
module gives the source the standard tests (config spec, emitted schema, stop -> resume ->
exact count, position validity, schema change, missing key, duplicates);
``sink_test_class`` does the same for sinks (round trip, replay idempotence, no torn writes,
schema change, missing key, duplicates). Tasks are driven directly, with an in-memory offset
reader and error reporter: no broker is needed.
"""

from omconnect.runtime.testing._memory_offsets import (
    CollectingErrorReporter,
    MemoryOffsetReader,
    ReportedRaw,
    ReportedRows,
)
from omconnect.runtime.testing._sink_suite import sink_test_class
from omconnect.runtime.testing._source_suite import source_test_class
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
    "SinkDriver",
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
