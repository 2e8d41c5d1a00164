"""The rename transform."""

from __future__ import annotations

import pytest

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import lookup
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import RecordBatch
from omconnect.transforms.rename import RenameSpec, RenameTransform


def make(fields: dict[str, str]) -> RenameTransform:
    return RenameTransform(RenameSpec.model_validate({"fields": fields}))


def test_renames_columns_and_key_fields(orders: RecordBatch) -> None:
    renamed = make({"id": "order_id", "amount": "total"}).apply(orders)
    assert renamed.values.schema.names == ["order_id", "total", "status", "email"]
    assert renamed.schema.names == ["order_id", "total", "status", "email"]
    assert renamed.schema.key_fields == ("order_id",)
    assert renamed.key_columns() is not None
    assert renamed.values.column("total").equals(orders.values.column("amount"))
    assert renamed.marks == orders.marks
    # The Arrow metadata header follows, so the schema read back from Arrow agrees.
    assert from_arrow_schema(renamed.values.schema, name="x") == renamed.schema


def test_swap_is_allowed(orders: RecordBatch) -> None:
    renamed = make({"status": "email", "email": "status"}).apply(orders)
    assert renamed.values.column("status").equals(orders.values.column("email"))


def test_missing_column_is_refused_with_a_suggestion(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match='no column "stats" \\(did you mean "status"\\?\\)'):
        make({"stats": "state"}).check(orders.schema)


def test_clash_is_refused(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match="two columns the name 'email'"):
        make({"status": "email"}).check(orders.schema)


def test_registered() -> None:
    assert lookup("transform", "rename").cls is RenameTransform
