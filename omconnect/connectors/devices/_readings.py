"""What every device source does with what it buffered between two polls: one record batch of
readings, column-wise, stamped with the time each reading was received.

A device source (MQTT, OPC-UA, Modbus) receives values one at a time, as Python objects from
its client library. It keeps them until the next poll and then builds one Arrow batch of
them with ``readings_batch``: the value columns it decoded, the receive time as a column
(``timestamp(UTC)``, microseconds) and as each record's timestamp (epoch milliseconds), the
schema, the key fields, and the one mark that covers everything the poll took.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.connectors.api import ConfigError, PositionMark, RecordBatch
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.message_ids import MessageIdRuns

RECEIVED_TYPE = pa.timestamp("us", "UTC")


def readings_batch(
    columns: pa.Table,
    received_ms: npt.NDArray[np.int64],
    *,
    schema_name: str,
    time_field: str | None,
    key: Sequence[str] = (),
    marks: tuple[PositionMark, ...] = (),
    row_headers: pa.MapArray | None = None,
    message_ids: MessageIdRuns | pa.StringArray | None = None,
) -> RecordBatch:
    """The readings of one poll as a record batch.

    Args:
        columns: the decoded values, one row per reading.
        received_ms: when each reading was received, in epoch milliseconds: the records'
            timestamps, and the ``time_field`` column.
        schema_name: the name of the batch's schema.
        time_field: the name of the receive time column (last), or None for none.
        key: the key fields (columns of the batch).
        marks: the positions the batch reaches.
        row_headers: per-reading headers (``map<string, binary>``), if any.
        message_ids: per-reading message ids, if the source sets them.
    """
    received = pa.array(received_ms, pa.int64())
    if time_field is not None:
        stamps = pa.array(received_ms * 1000, pa.int64()).cast(RECEIVED_TYPE)
        columns = columns.append_column(pa.field(time_field, RECEIVED_TYPE, False), stamps)
    values = columns.combine_chunks()
    batch = (
        values.to_batches()[0]
        if values.num_rows
        else pa.RecordBatch.from_pylist([], schema=values.schema)
    )
    return RecordBatch(
        values=batch,
        schema=from_arrow_schema(batch.schema, schema_name, key),
        marks=marks,
        timestamps=received,
        row_headers=row_headers,
        message_ids=message_ids,
    )


def check_names(names: Sequence[tuple[str, str]]) -> None:
    """Refuse two columns of one name: ``names`` holds (column, the option that makes it).

    Raises:
        ConfigError: at the option of the second column of a name.
    """
    seen: dict[str, str] = {}
    for name, option in names:
        if name in seen:
            raise ConfigError(
                f"the column {name!r} would come from both {seen[name]} and {option}: "
                "rename one of them",
                key=option,
            )
        seen[name] = option
