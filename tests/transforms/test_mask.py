"""The mask transform."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from pydantic import ValidationError

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.plugins import lookup
from omconnect.schemas import types as t
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.record import RecordBatch
from omconnect.transforms.mask import MaskSpec, MaskTransform

EMAILS = ["ann@example.com", "bob@example.org", None, "cy@x.io", "d@e.f", "é@ü.de"]


def make(**options: object) -> MaskTransform:
    return MaskTransform(MaskSpec.model_validate(options))


def test_with_replaces_values_and_keeps_nulls(orders: RecordBatch) -> None:
    masked = make(fields=["email", "status"], **{"with": "###"}).apply(orders)
    assert masked.values.column("email").to_pylist() == ["###", "###", None, "###", "###", "###"]
    assert masked.values.column("status").to_pylist() == ["###"] * 3 + [None] + ["###"] * 2
    assert masked.schema == orders.schema
    assert masked.marks == orders.marks


def test_default_is_three_stars(orders: RecordBatch) -> None:
    masked = make(fields=["email"]).apply(orders)
    assert masked.values.column("email").to_pylist()[0] == "***"


def test_sha256_is_the_hex_digest_of_the_utf8_text(orders: RecordBatch) -> None:
    masked = make(fields=["email"], hash="sha256").apply(orders)
    expected = [None if e is None else hashlib.sha256(e.encode()).hexdigest() for e in EMAILS]
    assert masked.values.column("email").to_pylist() == expected


def test_sha256_of_repeated_values_is_equal() -> None:
    values = pa.record_batch({"v": ["a", "b", "a", None, "a"]})
    batch = RecordBatch(values, from_arrow_schema(values.schema, name="s"))
    hashed = make(fields=["v"], hash="sha256").apply(batch).values.column("v").to_pylist()
    assert hashed[0] == hashed[2] == hashed[4] != hashed[1]
    assert hashed[3] is None


def test_sha256_of_bytes_hashes_the_bytes() -> None:
    values = pa.record_batch({"b": pa.array([b"\xff\x00", None], pa.binary())})
    batch = RecordBatch(values, from_arrow_schema(values.schema, name="s"))
    masked = make(fields=["b"], hash="sha256").apply(batch)
    assert masked.values.column("b").to_pylist() == [hashlib.sha256(b"\xff\x00").hexdigest(), None]
    assert masked.schema.type_of("b") == t.string()
    assert masked.values.schema.field("b").type == pa.string()


def test_keep_last_masks_all_but_the_last_characters(orders: RecordBatch) -> None:
    masked = make(fields=["email"], keep_last=4).apply(orders)
    expected = [None if e is None else "*" * max(len(e) - 4, 0) + e[-4:] for e in EMAILS]
    assert masked.values.column("email").to_pylist() == expected


def test_keep_last_zero_and_a_custom_character(orders: RecordBatch) -> None:
    masked = make(fields=["status"], keep_last=0, char="x").apply(orders)
    assert masked.values.column("status").to_pylist()[:2] == ["xxxx", "xxxx"]


def test_non_text_columns_need_cast_to_string(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match="cast_to_string"):
        make(fields=["amount"]).check(orders.schema)
    masked = make(fields=["amount"], keep_last=1, cast_to_string=True).apply(orders)
    assert masked.values.column("amount").to_pylist()[:4] == ["*0", "*1", None, "**5"]
    assert masked.schema.type_of("amount") == t.string()
    assert from_arrow_schema(masked.values.schema, name="x") == masked.schema


def test_nested_columns_cannot_be_masked() -> None:
    values = pa.record_batch({"l": [[1], [2]]})
    schema = from_arrow_schema(values.schema, name="s")
    with pytest.raises(ConfigError, match="cannot be masked"):
        make(fields=["l"], cast_to_string=True).check(schema)


def test_spec_takes_one_method_only() -> None:
    with pytest.raises(ValidationError, match="only one of with, hash and keep_last"):
        MaskSpec.model_validate({"fields": ["a"], "with": "x", "keep_last": 2})
    with pytest.raises(ValidationError):
        MaskSpec.model_validate({"fields": ["a"], "hash": "md5"})


def test_missing_column(orders: RecordBatch) -> None:
    with pytest.raises(ConfigError, match='did you mean "email"'):
        make(fields=["mail"]).check(orders.schema)


def test_registered() -> None:
    assert lookup("transform", "mask").cls is MaskTransform
