"""A small batch of orders with key fields, positions and timestamps, for transform tests."""

from __future__ import annotations

import pyarrow as pa
import pytest

from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.record import Position, PositionMark, RecordBatch


def position(offset: int) -> Position:
    return Position({"file": "orders.csv"}, {"line": offset})


@pytest.fixture
def orders() -> RecordBatch:
    """Six orders; marks after rows 2, 4 and 6; key field ``id``."""
    values = pa.record_batch(
        {
            "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
            "amount": pa.array([10.0, -1.0, None, 3.5, 0.0, 7.25], pa.float64()),
            "status": ["paid", "void", "paid", None, "shipped", "paid"],
            "email": ["ann@example.com", "bob@example.org", None, "cy@x.io", "d@e.f", "é@ü.de"],
        }
    )
    schema = from_arrow_schema(values.schema, name="orders", key_fields=["id"])
    values = pa.RecordBatch.from_arrays(values.columns, schema=to_arrow_schema(schema))
    marks = (
        PositionMark(2, position(2)),
        PositionMark(4, position(4)),
        PositionMark(6, position(6)),
    )
    timestamps = pa.array([100, 200, 300, 400, 500, 600], pa.int64())
    return RecordBatch(values=values, schema=schema, marks=marks, timestamps=timestamps)
