"""The filter transform: rows kept or dropped, positions kept, mistakes refused early."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import lookup
from omconnect.schemas.record import RecordBatch
from omconnect.transforms.filter import FilterSpec, FilterTransform


def make(where: str, mode: str = "keep") -> FilterTransform:
    return FilterTransform(FilterSpec.model_validate({"where": where, "mode": mode}))


def test_keeps_matching_rows_and_drops_nulls(orders: RecordBatch) -> None:
    kept = make("amount > 0 and status in ('paid', 'shipped')").apply(orders)
    assert kept.values.column("id").to_pylist() == [1, 6]
    assert kept.timestamps is not None and kept.timestamps.to_pylist() == [100, 600]
    assert kept.schema == orders.schema


def test_marks_keep_covering_the_rows_they_did(orders: RecordBatch) -> None:
    kept = make("amount > 0 and status in ('paid', 'shipped')").apply(orders)
    # Rows 1 and 6 survive: the first mark covers row 1, the second covers nothing left,
    # the third covers row 6. Every position is still there to commit.
    assert [m.end_row for m in kept.marks] == [1, 1, 2]
    assert [m.position for m in kept.marks] == [m.position for m in orders.marks]
    assert kept.positions == [orders.marks[-1].position]


def test_drop_mode_drops_matches_and_keeps_nulls(orders: RecordBatch) -> None:
    dropped = make("amount > 0", mode="drop").apply(orders)
    assert dropped.values.column("id").to_pylist() == [2, 3, 5]
    assert [m.end_row for m in dropped.marks] == [1, 2, 3]


def test_no_row_matches(orders: RecordBatch) -> None:
    empty = make("id > 100").apply(orders)
    assert empty.num_rows == 0
    assert [m.end_row for m in empty.marks] == [0, 0, 0]
    assert empty.positions == [orders.marks[-1].position]


def test_explicit_keys_are_filtered_with_the_rows(orders: RecordBatch) -> None:
    keys = pa.record_batch({"k": ["a", "b", "c", "d", "e", "f"]})
    batch = RecordBatch(orders.values, orders.schema, orders.marks, keys=keys)
    kept = make("id % 2 = 0").apply(batch)
    assert kept.keys is not None and kept.keys.column("k").to_pylist() == ["b", "d", "f"]


def test_check_refuses_unknown_columns_with_a_suggestion(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError) as caught:
        make("amout > 0").check(orders.schema)
    assert caught.value.key == "where"
    assert 'did you mean "amount"' in str(caught.value)


def test_check_refuses_type_mismatches(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match="cannot evaluate 'status > 3'"):
        make("status > 3").check(orders.schema)
    with pytest.raises(ConfigError, match="not a condition"):
        make("amount * 2").check(orders.schema)


def test_check_accepts_a_good_condition(orders: RecordBatch) -> None:
    make("lower(status) = 'paid' and email is not null").check(orders.schema)


def test_spec_refuses_syntax_errors_and_unknown_options() -> None:
    with pytest.raises(ValidationError, match="invalid syntax"):
        FilterSpec.model_validate({"where": "amount >"})
    with pytest.raises(ValidationError):
        FilterSpec.model_validate({"where": "amount > 0", "mode": "maybe"})
    with pytest.raises(ValidationError):
        FilterSpec.model_validate({"where": "amount > 0", "wher": "x"})


def test_registered_as_filter() -> None:
    registration = lookup("transform", "filter")
    assert registration.cls is FilterTransform
    assert registration.spec is FilterSpec
    assert FilterSpec.model_fields["where"].description
