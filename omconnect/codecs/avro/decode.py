"""Vectorised decoding of Avro bodies into an Arrow record batch.

All bodies are decoded together, field by field, with one cursor per body (see ``cursor``):
``read_value(cursor, rows, schema, kind, path)`` reads the field described by ``schema`` at
the cursor positions of ``rows`` (indices of bodies, or None for every body, which spares
gathering and scattering the positions) and returns an Arrow array of ``kind`` with one value
per row. After the last field every cursor must sit exactly at its body's end; a body that
breaks any rule on the way is failed on the cursor with the reason and holds a placeholder,
never allowed to fail the others.

Large batches are decoded a few megabytes of bodies at a time and the pieces joined into one
batch at the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view

from omconnect.codecs.avro.bodies import rows_per_piece
from omconnect.codecs.avro.cursor import BodyCursor, Rows, all_ascii, binary_of_spans
from omconnect.codecs.avro.decimals import decode_decimals, decode_unsigned
from omconnect.codecs.avro.errors import CorruptBodiesError
from omconnect.codecs.avro.per_row import decode_rows
from omconnect.codecs.avro.types import (
    AvroType,
    column_name,
    enum_symbols,
    expanded,
    integer_array,
    integer_bounds,
    least_size,
    logical_type,
    nullable_branches,
    record_fields,
    type_name,
    unwrap,
)
from omconnect.codecs.avro.varints import decode_varints, unaligned_values
from omconnect.codecs.uuid_text import UUID_TEXT_LENGTH, uuids_from_text_matrix

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Arrays whose first block holds more items than this, in no more than this many rows, are
# read row by row (see ``_read_long_arrays_apart``): a step costs about as much as 40 items
# read by fastavro, so past a few dozen such rows the steps, shared by all rows, win again.
_LONG_ARRAY = 1024
_FEW_ROWS = 32

# A second pass over the good bodies normally finds nothing; more passes only guard against
# a failure that depends on neighbouring rows.
_MAX_PASSES = 3


def decode_batch(
    bodies: pa.Array, avro_schema: AvroType, arrow_schema: pa.Schema, skip: int = 0
) -> pa.RecordBatch:
    """Decode one Avro datum of the record ``avro_schema`` from each body.

    Args:
        bodies: binary (or large_binary) array of message bodies.
        avro_schema: the writer's Avro record schema.
        arrow_schema: the batch to build; its fields are matched to the record's by name
            (Avro fields it lacks are read and dropped, fields the record lacks are null).
        skip: bytes at the start of every body that are not part of the datum (5 for the
            Confluent header).

    Raises:
        CorruptBodiesError: some bodies are not valid; ``rows`` says which and why.
    """
    batch, failed = decode_batch_lenient(bodies, avro_schema, arrow_schema, skip)
    if failed:
        raise CorruptBodiesError(failed)
    return batch


def decode_batch_lenient(
    bodies: pa.Array, avro_schema: AvroType, arrow_schema: pa.Schema, skip: int = 0
) -> tuple[pa.RecordBatch, dict[int, Exception]]:
    """Like ``decode_batch``, but corrupt bodies are left out instead of failing the batch.

    Returns:
        (batch of the good bodies in their original order, body index -> reason for each
        corrupt one). The batch has ``len(bodies) - len(failed)`` rows.
    """
    schema = expanded(avro_schema)
    step = rows_per_piece(len(bodies), bodies.nbytes)
    if step >= len(bodies):
        return _decode_piece(bodies, schema, arrow_schema, skip)
    batches: list[pa.RecordBatch] = []
    failed: dict[int, Exception] = {}
    for start in range(0, len(bodies), step):
        piece = bodies.slice(start, step)
        batch, piece_failed = _decode_piece(piece, schema, arrow_schema, skip)
        batches.append(batch)
        failed.update((start + index, error) for index, error in piece_failed.items())
    table = pa.Table.from_batches(batches, schema=arrow_schema).combine_chunks()
    joined = table.to_batches()
    return (joined[0] if joined else _empty(arrow_schema)), failed


def _decode_piece(
    bodies: pa.Array, schema: AvroType, arrow_schema: pa.Schema, skip: int
) -> tuple[pa.RecordBatch, dict[int, Exception]]:
    """``decode_batch_lenient`` of bodies decoded in one go."""
    remaining = np.arange(len(bodies), dtype=np.int64)
    failed: dict[int, Exception] = {}
    current = bodies
    for _ in range(_MAX_PASSES):
        batch, cursor = _decode_once(current, schema, arrow_schema, skip)
        if not cursor.bad.any():
            return batch, dict(sorted(failed.items()))
        for index, error in cursor.reasons.items():
            failed[int(remaining[index])] = error
        keep = ~cursor.bad
        remaining = remaining[keep]
        current = current.filter(pa.array(keep))
    for index in remaining.tolist():
        failed[index] = CorruptBodiesError({index: ValueError("body keeps failing to decode")})
    return _empty(arrow_schema), dict(sorted(failed.items()))


def _decode_once(
    bodies: pa.Array, schema: AvroType, arrow_schema: pa.Schema, skip: int
) -> tuple[pa.RecordBatch, BodyCursor]:
    cursor = BodyCursor(bodies, skip)
    record = read_record(cursor, None, schema, pa.struct(list(arrow_schema)), "")
    cursor.check_all_consumed()
    batch = pa.RecordBatch.from_struct_array(record)
    return pa.RecordBatch.from_arrays(batch.columns, schema=arrow_schema), cursor


def _empty(arrow_schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=arrow_schema)


def read_value(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    """Read one value of ``schema`` for each of ``rows`` as an Arrow array of ``kind``."""
    schema = unwrap(schema)
    branches = nullable_branches(schema)
    if branches is not None:
        return _read_nullable(cursor, rows, branches, kind, path)
    name = type_name(schema)
    if name == "union":  # of several types: rare, and fastavro knows how to pick a branch
        return _read_per_row(cursor, rows, schema, kind, path)
    if name in ("array", "map"):
        return _read_repeated(cursor, rows, schema, kind, path)
    if name == "fixed":
        size = int(schema["size"])
        starts = cursor.take_fixed(rows, size, path)
        lengths = np.full(len(starts), size, dtype=np.int64)
        return _read_bytes(cursor, rows, starts, lengths, kind, path, uuid_text=False)
    if name == "record":
        return read_record(cursor, rows, schema, kind, path)
    if name == "null":
        return pa.nulls(cursor.count(rows), kind)
    if name == "boolean":
        flags = cursor.padded[cursor.take_fixed(rows, 1, path)]
        cursor.fail_where(rows, flags > 1, f"{path}: boolean byte is neither 0 nor 1")
        return pa.array(flags == 1, pa.bool_())
    if name in ("int", "long"):
        return _read_integers(cursor, rows, schema, kind, path)
    if name in ("float", "double"):
        dtype = np.dtype("<f4" if name == "float" else "<f8")
        starts = cursor.take_fixed(rows, dtype.itemsize, path)
        array = pa.array(unaligned_values(cursor.padded, dtype)[starts])
        return array if array.type == kind else array.cast(kind)
    if name == "enum":
        return _read_enum(cursor, rows, schema, kind, path)
    if name in ("string", "bytes"):
        starts, lengths = cursor.take(rows, cursor.varints(rows, path), path)
        return _read_bytes(cursor, rows, starts, lengths, kind, path, uuid_text=True)
    raise TypeError(f"{path}: unsupported Avro type {name!r}")


def skip_value(cursor: BodyCursor, rows: Rows, schema: AvroType, path: str) -> None:
    """Move the positions of ``rows`` past one value of ``schema`` without keeping it."""
    schema = unwrap(schema)
    branches = nullable_branches(schema)
    if branches is not None:
        null_index, value_index, inner = branches
        branch = cursor.varints(rows, path)
        has_value = branch == value_index
        cursor.fail_where(rows, ~has_value & (branch != null_index), f"{path}: bad union branch")
        if has_value.all():
            skip_value(cursor, rows, inner, path)
        elif has_value.any():
            skip_value(cursor, cursor.indices(rows)[has_value], inner, path)
        return
    name = type_name(schema)
    if name == "record":
        for field in record_fields(schema):
            skip_value(cursor, rows, field["type"], f"{path}.{field['name']}")
    elif name in ("array", "map"):
        items = schema["items"] if name == "array" else schema["values"]
        size = least_size(items) + (1 if name == "map" else 0)
        for step in cursor.item_steps(rows, size, path):
            if name == "map":
                cursor.take(step, cursor.varints(step, path), path)
            skip_value(cursor, step, items, path)
    elif name == "union":
        _read_per_row(cursor, rows, schema, pa.null(), path)
    elif name in ("int", "long", "enum"):
        cursor.varints(rows, path)
    elif name in ("string", "bytes"):
        cursor.take(rows, cursor.varints(rows, path), path)
    elif name != "null":
        cursor.take_fixed(rows, least_size(schema), path)


def read_record(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    """Read a record's fields in order; the Arrow struct ``kind`` picks and orders them."""
    arrow_fields = {kind.field(i).name: kind.field(i) for i in range(kind.num_fields)}
    read: dict[str, pa.Array] = {}
    for field in record_fields(schema):
        target = arrow_fields.get(column_name(field))
        field_path = f"{path}.{field['name']}" if path else field["name"]
        if target is None:
            skip_value(cursor, rows, field["type"], field_path)
        else:
            read[column_name(field)] = read_value(
                cursor, rows, field["type"], target.type, field_path
            )
    count = cursor.count(rows)
    children = [read.get(name, pa.nulls(count, f.type)) for name, f in arrow_fields.items()]
    return pa.StructArray.from_arrays(children, fields=list(arrow_fields.values()))


def _read_nullable(
    cursor: BodyCursor,
    rows: Rows,
    branches: tuple[int, int, AvroType],
    kind: pa.DataType,
    path: str,
) -> pa.Array:
    null_index, value_index, inner = branches
    branch = cursor.varints(rows, path)
    has_value = branch == value_index
    if has_value.all():
        return read_value(cursor, rows, inner, kind, path)
    out_of_range = ~has_value & (branch != null_index)
    cursor.fail_where(rows, out_of_range, f"{path}: union branch out of range")
    value_rows = np.flatnonzero(has_value) if rows is None else rows[has_value]
    values = read_value(cursor, value_rows, inner, kind, path)
    if not has_value.any():
        return pa.nulls(len(has_value), kind)
    positions = pa.array(np.cumsum(has_value) - 1, mask=~has_value)
    return values.take(positions)


def _read_integers(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    values = cursor.varints(rows, path)
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    if pa.types.is_integer(storage) or pa.types.is_date32(storage) or pa.types.is_time32(storage):
        low, high = integer_bounds(kind if pa.types.is_integer(storage) else pa.int32())
        outside = (values < low) | (values > high)
        if outside.any():
            cursor.fail_where(rows, outside, f"{path}: value does not fit Arrow {kind}")
            values = np.where(outside, 0, values)
    return integer_array(values, kind, logical_type(schema))


def _read_enum(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    symbols = pa.array(enum_symbols(schema), pa.string())
    indices = cursor.varints(rows, path)
    outside = (indices < 0) | (indices >= len(symbols))
    cursor.fail_where(rows, outside, f"{path}: enum index out of range")
    indices = np.where(outside, 0, indices).astype(np.int32)
    if pa.types.is_dictionary(kind):
        array = pa.DictionaryArray.from_arrays(pa.array(indices), symbols)
        return array if array.type == kind else array.cast(kind)
    return symbols.take(pa.array(indices)).cast(kind)


def _read_bytes(
    cursor: BodyCursor,
    rows: Rows,
    starts: I64,
    lengths: I64,
    kind: pa.DataType,
    path: str,
    uuid_text: bool,
) -> pa.Array:
    """The byte spans of ``rows`` (of an Avro string, bytes or fixed) as Arrow ``kind``: text,
    binary, a decimal or uint64 (big-endian two's complement), or a UUID (its text when
    ``uuid_text``, else its 16 bytes)."""
    storage = kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind
    if pa.types.is_uint64(kind):
        array, bad = decode_unsigned(cursor.padded, starts, lengths)
        cursor.fail_where(rows, bad, f"{path}: value does not fit Arrow uint64")
        return array
    if pa.types.is_decimal(kind):
        array, bad = decode_decimals(cursor.padded, starts, lengths, kind)
        cursor.fail_where(rows, bad, f"{path}: decimal does not fit {kind}")
        return array
    if pa.types.is_fixed_size_binary(storage) and not uuid_text:
        wrong_length = lengths != storage.byte_width
        cursor.fail_where(rows, wrong_length, f"{path}: {storage.byte_width} bytes expected")
        raw = binary_of_spans(cursor.padded, starts, np.where(wrong_length, 0, lengths))
        spans = pc.if_else(pa.array(wrong_length), pa.scalar(bytes(storage.byte_width)), raw)
        array = spans.cast(storage)
        return pa.ExtensionArray.from_storage(kind, array) if kind != storage else array
    if pa.types.is_fixed_size_binary(storage) and storage.byte_width == 16:
        wrong_length = lengths != UUID_TEXT_LENGTH
        cursor.fail_where(rows, wrong_length, f"{path}: a UUID string has 36 characters")
        text = sliding_window_view(cursor.padded, UUID_TEXT_LENGTH)[starts]
        array, bad = uuids_from_text_matrix(text, kind)
        cursor.fail_where(rows, bad & ~wrong_length, f"{path}: not a UUID")
        return array
    binary = binary_of_spans(cursor.padded, starts, lengths)
    if pa.types.is_binary(storage) or pa.types.is_large_binary(storage):
        array = binary.cast(storage)
    else:
        array = _as_text(cursor, rows, binary, storage, path)
    if isinstance(kind, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(kind, array)
    return array


def _as_text(
    cursor: BodyCursor, rows: Rows, binary: pa.Array, kind: pa.DataType, path: str
) -> pa.Array:
    """Binary values -> a string array; rows that are not UTF-8 are failed and emptied."""
    if all_ascii(binary):  # valid UTF-8 as it is: view it as text without validating
        text = binary.view(pa.large_string() if binary.type == pa.large_binary() else pa.string())
        return text if text.type == kind else text.cast(kind)
    try:
        return binary.cast(kind)
    except pa.ArrowInvalid:
        pass
    bad = np.zeros(len(binary), dtype=np.bool_)
    for index, value in enumerate(binary.to_pylist()):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            bad[index] = True
    cursor.fail_where(rows, bad, f"{path}: string is not valid UTF-8")
    cleaned = pa.array(
        [
            b"" if flag else value
            for flag, value in zip(bad.tolist(), binary.to_pylist(), strict=True)
        ],
        binary.type,
    )
    return cleaned.cast(kind)


def _read_repeated(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    """An Avro array or map at each of ``rows`` as an Arrow list, large list or map.

    Items are read a step at a time for every row that still has one (``item_steps``), so the
    work per step is vectorised across rows; the pieces are then put in row order with one
    stable sort (they are runs already sorted by row, which the sort merges). An Arrow map
    comes from an Avro map (string keys) or from an array of key/value records (any key).
    """
    avro_map = type_name(schema) == "map"
    items = schema["values"] if avro_map else schema["items"]
    item_size = least_size(items) + avro_map
    long = _long_arrays(cursor, rows, item_size)
    if long is not None:
        return _read_long_arrays_apart(cursor, rows, long, schema, kind, path)
    if pa.types.is_map(kind):
        entry = pa.struct([kind.key_field, kind.item_field])
        item_kind = kind.item_type if avro_map else entry
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if avro_map:
            raise TypeError(f"{path}: cannot read an Avro map as Arrow {kind}")
        item_kind = kind.value_type
    else:
        raise TypeError(f"{path}: cannot read an Avro {type_name(schema)} as Arrow {kind}")
    steps: list[I64] = []
    keys: list[pa.Array] = []
    values: list[pa.Array] = []
    item_path = f"{path}[]"
    for step in cursor.item_steps(rows, item_size, path):
        steps.append(step)
        if avro_map:
            starts, lengths = cursor.take(step, cursor.varints(step, item_path), item_path)
            key = _read_bytes(cursor, step, starts, lengths, kind.key_type, item_path, True)
            keys.append(key)
        values.append(read_value(cursor, step, items, item_kind, item_path))
    indices = cursor.indices(rows)
    owners = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)
    order = pa.array(np.argsort(owners, kind="stable"))
    counts = np.bincount(np.searchsorted(indices, owners), minlength=len(indices))
    offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    value_array = _joined(values, item_kind).take(order)
    if pa.types.is_map(kind):
        if avro_map:
            key_array = _joined(keys, kind.key_type).take(order)
        else:
            key_array, value_array = value_array.field(0), value_array.field(1)
        return pa.MapArray.from_arrays(
            pa.array(offsets.astype(np.int32)), key_array, value_array, type=kind
        )
    if pa.types.is_large_list(kind):
        return pa.LargeListArray.from_arrays(pa.array(offsets), value_array, type=kind)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), value_array, type=kind)


def _long_arrays(cursor: BodyCursor, rows: Rows, item_size: int) -> Mask | None:
    """Where (among ``rows``) an array starts with a block of more than ``_LONG_ARRAY``
    items that fit the body, when at least one and at most ``_FEW_ROWS`` do; else None.
    Items of no bytes never need this: they are read in one step."""
    if not item_size:
        return None
    starts = cursor.starts(rows)
    counts, _, _ = decode_varints(cursor.padded, starts)
    counts = np.abs(counts)
    fits = counts <= (cursor.end[cursor.indices(rows)] - starts) // item_size
    long = (counts > _LONG_ARRAY) & fits
    return long if 0 < int(long.sum()) <= _FEW_ROWS else None


def _read_long_arrays_apart(
    cursor: BodyCursor, rows: Rows, long: Mask, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    """Arrays of thousands of items in a few rows would take as many steps (each vectorised
    over those few rows): fastavro reads those rows' arrays one by one instead, faster."""
    indices = cursor.indices(rows)
    short_values = _read_repeated(cursor, indices[~long], schema, kind, path)
    long_values = _read_per_row(cursor, indices[long], schema, kind, path)
    order = np.argsort(np.concatenate([np.flatnonzero(~long), np.flatnonzero(long)]))
    return pa.concat_arrays([short_values, long_values]).take(pa.array(order))


def _joined(pieces: list[pa.Array], kind: pa.DataType) -> pa.Array:
    """Arrays of one type end to end (an empty array of ``kind`` when there are none)."""
    if not pieces:
        return pa.nulls(0, kind)  # pa.array([], kind) refuses extension types
    return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)


def _read_per_row(
    cursor: BodyCursor, rows: Rows, schema: AvroType, kind: pa.DataType, path: str
) -> pa.Array:
    indices = cursor.indices(rows)
    starts = cursor.pos[indices]
    ends = cursor.end[indices]
    values, after, failures = decode_rows(cursor.stream(), starts, ends, schema, kind)
    cursor.pos[indices] = after
    for index, error in failures.items():
        cursor.fail(indices[index : index + 1], f"{path}: {error}")
    return values
