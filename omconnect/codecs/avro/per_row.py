"""The per-row path: fastavro encodes or decodes one field, row by row, for what the
vectorised codec leaves to it: unions of several types, ``fixed`` values written to a foreign
schema, and the rare arrays of thousands of items in a few rows (see ``decode``).

Only the fields (and rows) that need it take this path; the rest of the batch stays vectorised.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import fastavro
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.codecs.avro.types import AvroType, named_once

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


def encode_rows(
    array: pa.Array, schema: AvroType, present: Mask | None
) -> tuple[pa.Array, dict[int, Exception]]:
    """Each present row's value encoded by fastavro with ``schema``; absent rows get b"".

    Returns the per-row bytes and the rows fastavro refused, with its error.
    """
    parsed = fastavro.parse_schema(named_once(schema))
    values = array.to_pylist(maps_as_pydicts="strict")
    out: list[bytes] = []
    failed: dict[int, Exception] = {}
    buffer = io.BytesIO()
    for row, value in enumerate(values):
        if present is not None and not present[row]:
            out.append(b"")
            continue
        buffer.seek(0)
        buffer.truncate()
        try:
            fastavro.schemaless_writer(buffer, parsed, value)
        except Exception as error:  # fastavro raises many types for values it cannot write
            failed[row] = error
            out.append(b"")
            continue
        out.append(buffer.getvalue())
    return pa.array(out, pa.binary()), failed


def decode_rows(
    body: io.BytesIO, starts: I64, ends: I64, schema: AvroType, kind: pa.DataType
) -> tuple[pa.Array, I64, dict[int, Exception]]:
    """Decode one field at ``starts`` of each row with fastavro.

    Args:
        body: the whole data buffer the positions point into.
        starts: where each row's field starts; ends: where each row's body ends.
        schema: the field's Avro schema; kind: the Arrow type to build.

    Returns:
        (values, positions after the field, failures by index into ``starts``). Failed rows
        hold a null value and keep their start position.
    """
    parsed = fastavro.parse_schema(named_once(schema))
    values: list[Any] = []
    after = starts.copy()
    failed: dict[int, Exception] = {}
    for index, start in enumerate(starts.tolist()):
        body.seek(start)
        try:
            value = fastavro.schemaless_reader(body, parsed, None)
            end = body.tell()
            if end > ends[index]:
                raise ValueError("value runs past the end of the body")
        except Exception as error:  # any reader error means this body is corrupt
            failed[index] = error
            values.append(None)
            continue
        after[index] = end
        values.append(arrow_ready(value, kind))
    if kind == pa.null():  # the caller skips this field: only the positions matter
        return pa.nulls(len(values)), after, failed
    try:
        return pa.array(values, kind), after, failed
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    # Some value does not fit the Arrow type: find which, one at a time.
    for index, value in enumerate(values):
        try:
            pa.array([value], kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            failed[index] = error
            values[index] = None
    return pa.array(values, kind), after, failed


def arrow_ready(value: Any, kind: pa.DataType) -> Any:
    """A value as fastavro read it -> a value ``pa.array`` accepts for ``kind``."""
    if value is None:
        return None
    if isinstance(kind, pa.BaseExtensionType):
        if isinstance(value, uuid.UUID):
            return value.bytes
        if isinstance(value, str) and kind.storage_type == pa.binary(16):
            return uuid.UUID(value).bytes
        return arrow_ready(value, kind.storage_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return [arrow_ready(item, kind.value_type) for item in value]
    if pa.types.is_map(kind):
        pairs = (
            value.items() if isinstance(value, dict) else [(e["key"], e["value"]) for e in value]
        )
        return [
            (arrow_ready(key, kind.key_type), arrow_ready(item, kind.item_type))
            for key, item in pairs
        ]
    if pa.types.is_struct(kind):
        return {
            kind.field(i).name: arrow_ready(value.get(kind.field(i).name), kind.field(i).type)
            for i in range(kind.num_fields)
        }
    return value


def value_starts(body: io.BytesIO, start: int, end: int, count: int, schema: AvroType) -> I64:
    """Where each of ``count`` values of ``schema`` written one after another from ``start``
    begins; fastavro reads them in turn.

    Raises:
        ValueError: the values do not end exactly at ``end``.
    """
    parsed = fastavro.parse_schema(named_once(schema))
    starts = np.empty(count, dtype=np.int64)
    body.seek(start)
    try:
        for index in range(count):
            starts[index] = body.tell()
            fastavro.schemaless_reader(body, parsed, None)
    except Exception as error:  # any reader error means the data is corrupt
        raise ValueError(f"record {index}: {error}") from error
    if body.tell() != end:
        raise ValueError(f"{count} records end at byte {body.tell() - start}, not {end - start}")
    return starts
