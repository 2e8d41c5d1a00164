"""The drop transform."""

from __future__ import annotations

import pytest

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import lookup
from omconnect.schemas.record import RecordBatch
from omconnect.transforms.drop import DropSpec, DropTransform


def make(fields: list[str], **options: object) -> DropTransform:
    return DropTransform(DropSpec.model_validate({"fields": fields, **options}))


def test_drops_columns_keeping_the_key(orders: RecordBatch) -> None:
    dropped = make(["email", "status"]).apply(orders)
    assert dropped.values.schema.names == ["id", "amount"]
    assert dropped.schema.names == ["id", "amount"]
    assert dropped.schema.key_fields == ("id",)
    assert dropped.marks == orders.marks
    assert dropped.num_rows == orders.num_rows


def test_dropping_a_key_field_is_refused(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match="cannot drop key field 'id'"):
        make(["id"]).check(orders.schema)


def test_missing_column_is_refused_unless_ignored(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match='did you mean "email"'):
        make(["emial"]).check(orders.schema)
    assert make(["emial"], ignore_missing=True).apply(orders).schema == orders.schema


def test_dropping_every_column_is_refused(orders: RecordBatch) -> None:
    keyless = orders.schema.with_fields(orders.schema.fields)
    keyless = type(keyless)(name="orders", fields=keyless.fields)
    with pytest.raises(ConfigError, match="every column"):
        make(["id", "amount", "status", "email"]).check(keyless)


def test_registered() -> None:
    assert lookup("transform", "drop").cls is DropTransform
