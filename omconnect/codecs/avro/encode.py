"""Vectorised Avro encoding of Arrow record batches: one schemaless datum per row.

Each field is encoded for all rows at once into byte parts (see ``bodies``), in schema
order, and the parts are then assembled into one body per row. The bytes are identical to
``fastavro.schemaless_writer`` on the same row. Fields holding arrays or maps take fastavro's
per-row path for that field only (see ``per_row``). Batches of more than a few megabytes are
encoded piece by piece.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.avro.bodies import (
    MatrixPart,
    Part,
    assemble,
    binary_with_nulls,
    byte_part,
    concat_binary,
    constant_part,
    fixed_bytes_part,
    rows_per_piece,
)
from omconnect.codecs.avro.decimals import encode_decimals, unsigned_as_decimal
from omconnect.codecs.avro.errors import RowFailures, UnencodableRowsError
from omconnect.codecs.avro.per_row import encode_rows
from omconnect.codecs.avro.types import (
    AvroType,
    column_name,
    enum_symbols,
    expanded,
    fixed_width_values,
    integer_values,
    logical_type,
    nullable_branches,
    record_fields,
    storage_of,
    type_name,
    unwrap,
    valid_mask,
)
from omconnect.codecs.avro.varints import encode_varints, zigzag_of_index
from omconnect.codecs.uuid_text import UUID_TEXT_LENGTH, uuid_bytes, uuid_text_matrix

Mask = npt.NDArray[np.bool_]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def encode_batch(batch: pa.RecordBatch, avro_schema: AvroType, prefix: bytes = b"") -> pa.Array:
    """Encode every row of ``batch`` as an Avro datum of the record ``avro_schema``.

    Args:
        batch: the rows; columns are matched to the record's fields by name.
        avro_schema: an Avro record schema (a fastavro-style dict).
        prefix: bytes put before every datum (the Confluent header, for instance).

    Returns:
        A binary array with one body per row.

    Raises:
        UnencodableRowsError: some rows hold values the schema cannot carry (a null in a
            non-nullable field, a decimal wider than its precision ...); ``rows`` lists them.
        TypeError: a column's Arrow type cannot be encoded as its field's Avro type at all.
    """
    bodies, failed = encode_batch_lenient(batch, avro_schema, prefix)
    if failed:
        raise UnencodableRowsError(failed)
    return bodies


def encode_batch_lenient(
    batch: pa.RecordBatch, avro_schema: AvroType, prefix: bytes = b""
) -> tuple[pa.Array, dict[int, Exception]]:
    """Like ``encode_batch``, but rows that cannot be encoded get a null body and are
    returned as row index -> reason instead of failing the batch."""
    schema = expanded(avro_schema)
    step = rows_per_piece(batch.num_rows, batch.nbytes)
    if step >= batch.num_rows:
        return _encode_piece(batch, schema, prefix)
    pieces: list[pa.Array] = []
    failed: dict[int, Exception] = {}
    for start in range(0, batch.num_rows, step):
        bodies, piece_failed = _encode_piece(batch.slice(start, step), schema, prefix)
        pieces.append(bodies)
        failed.update((start + row, error) for row, error in piece_failed.items())
    return concat_binary(pieces), failed


def _encode_piece(
    batch: pa.RecordBatch, schema: AvroType, prefix: bytes
) -> tuple[pa.Array, dict[int, Exception]]:
    """``encode_batch_lenient`` of rows encoded in one go (``schema`` already expanded)."""
    failures = RowFailures(batch.num_rows)
    parts = _encode_fields(
        batch.num_rows, batch.schema.names, batch.columns, schema, None, failures, ""
    )
    if not failures.mask.any():
        return assemble(parts, batch.num_rows, prefix), {}
    keep = ~failures.mask
    good = batch.filter(pa.array(keep))
    good_failures = RowFailures(good.num_rows)
    good_parts = _encode_fields(
        good.num_rows, good.schema.names, good.columns, schema, None, good_failures, ""
    )
    encoded = assemble(good_parts, good.num_rows, prefix)
    return binary_with_nulls(encoded, keep, batch.num_rows), failures.reasons


def _encode_fields(
    num_rows: int,
    names: list[str],
    columns: list[pa.Array],
    record: AvroType,
    present: Mask | None,
    failures: RowFailures,
    path: str,
) -> list[Part]:
    by_name = dict(zip(names, columns, strict=True))
    parts: list[Part] = []
    for field in record_fields(record):
        field_path = f"{path}.{field['name']}" if path else field["name"]
        column = by_name.get(column_name(field))
        if column is None:
            column = pa.nulls(num_rows)
        parts.extend(_encode_value(column, field["type"], present, failures, field_path))
    return parts


def _encode_value(
    array: pa.Array, schema: AvroType, present: Mask | None, failures: RowFailures, path: str
) -> list[Part]:
    """The parts of one value per row; rows where ``present`` is False contribute nothing."""
    schema = unwrap(schema)
    num_rows = len(array)
    valid = valid_mask(array)
    branches = nullable_branches(schema)
    if branches is not None:
        null_index, value_index, inner = branches
        absent = None if present is None else ~present
        if valid is None:
            branch = constant_part(num_rows, bytes([zigzag_of_index(value_index)]))
        else:
            codes = np.where(valid, zigzag_of_index(value_index), zigzag_of_index(null_index))
            branch = byte_part(num_rows, codes.astype(np.uint8))
        inner_parts = _encode_value(array, inner, _both(present, valid), failures, path)
        return [branch.without(absent), *inner_parts]
    name = type_name(schema)
    if name == "null":
        return []
    if valid is not None:
        nulls = ~valid if present is None else (~valid & present)
        failures.add(nulls, f"{path}: null in a field that is not nullable")
        present = _both(present, valid)
    absent = None if present is None else ~present
    if name in ("array", "map"):
        return _encode_repeated(array, schema, present, failures, path)
    if name in ("fixed", "union"):  # written only for foreign schemas: fastavro, per row
        encoded, errors = encode_rows(array, schema, present)
        failures.add_each(errors, path)
        return [encoded]
    if name == "record":
        if not pa.types.is_struct(array.type):
            raise TypeError(f"{path}: cannot encode Arrow {array.type} as an Avro record")
        names = [array.type.field(i).name for i in range(array.type.num_fields)]
        children = [array.field(i) for i in range(array.type.num_fields)]
        return _encode_fields(num_rows, names, children, schema, present, failures, path)
    if name == "boolean":
        flags = fixed_width_values(array, np.uint8).view(np.uint8)
        return [byte_part(num_rows, flags, absent)]
    if name in ("int", "long"):
        return [_encode_integers(array, schema, name, present, failures, path).without(absent)]
    if name in ("float", "double"):
        values = fixed_width_values(array, "<f4" if name == "float" else "<f8")
        return [fixed_bytes_part(values).without(absent)]
    if name == "enum":
        return [_encode_enum(array, schema, present, failures, path).without(absent)]
    if name in ("string", "bytes"):
        return _encode_text(array, schema, present, failures, path)
    raise TypeError(f"{path}: unsupported Avro type {name!r}")


def _encode_repeated(
    array: pa.Array, schema: AvroType, present: Mask | None, failures: RowFailures, path: str
) -> list[Part]:
    """An Arrow list, large list or map per row as an Avro array or map: one block of all the
    row's items (count, items, closing 0), or a lone 0 when the row has none.

    The items of all rows are encoded together as bodies of their own; the bytes of a row's
    items are then one span of those bodies' data, so a row's block is its count, that span
    and the closing byte, without copying items per row.
    """
    storage = storage_of(array)
    avro_map = type_name(schema) == "map"
    if not (pa.types.is_list(storage.type) or pa.types.is_large_list(storage.type)) and not (
        pa.types.is_map(storage.type)
    ):
        raise TypeError(f"{path}: cannot encode Arrow {array.type} as an Avro {type_name(schema)}")
    if avro_map and not pa.types.is_map(storage.type):
        raise TypeError(f"{path}: cannot encode Arrow {array.type} as an Avro map")
    num_rows = len(array)
    offsets = np.asarray(storage.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    offsets = offsets - first
    counts = np.diff(offsets)
    items = storage.values.slice(first, last - first)
    item_present = None if present is None else np.repeat(present, counts)
    if present is not None:
        counts = np.where(present, counts, 0)
    item_failures = RowFailures(len(items))
    item_path = f"{path}[]"
    if avro_map:
        keys, values = items.field(0), items.field(1)
        parts = _encode_text(keys, "string", item_present, item_failures, item_path)
        parts += _encode_value(values, schema["values"], item_present, item_failures, item_path)
    else:
        parts = _encode_value(items, schema["items"], item_present, item_failures, item_path)
    item_bodies = assemble(parts, len(items))
    if item_failures.mask.any():
        failed_items = np.flatnonzero(item_failures.mask)
        owners = np.searchsorted(offsets, failed_items, side="right") - 1
        failures.add_each_of(owners, [item_failures.reasons[i] for i in failed_items.tolist()])
    large = item_bodies.type == pa.large_binary()
    item_ends = np.frombuffer(
        item_bodies.buffers()[1],
        dtype=np.int64 if large else np.int32,
        count=item_bodies.offset + len(items) + 1,
    )[item_bodies.offset :]
    spans = item_ends[offsets].astype(np.int64 if large else np.int32)
    row_items = pa.Array.from_buffers(
        item_bodies.type, num_rows, [None, pa.py_buffer(spans), item_bodies.buffers()[2]]
    )
    absent = None if present is None else ~present
    count_part = MatrixPart(*encode_varints(counts)).without(absent)
    closing = byte_part(num_rows, np.zeros(num_rows, dtype=np.uint8), counts == 0)
    return [count_part, row_items, closing]


def _both(present: Mask | None, valid: Mask | None) -> Mask | None:
    if present is None:
        return valid
    return present if valid is None else present & valid


def _encode_integers(
    array: pa.Array,
    schema: AvroType,
    name: str,
    present: Mask | None,
    failures: RowFailures,
    path: str,
) -> MatrixPart:
    kind = storage_of(array).type
    if not (pa.types.is_integer(kind) or pa.types.is_temporal(kind)):
        raise TypeError(f"{path}: cannot encode Arrow {array.type} as Avro {name}")
    values = integer_values(storage_of(array), logical_type(schema))
    if name == "int" and (kind.bit_width > 32 or pa.types.is_uint32(kind)):
        outside = (values < _INT32_MIN) | (values > _INT32_MAX)
        failures.add(
            outside if present is None else outside & present,
            f"{path}: value does not fit an Avro int (32 bits)",
        )
        values = np.where(outside, 0, values)
    matrix, lengths = encode_varints(values)
    return MatrixPart(matrix, lengths)


def _encode_enum(
    array: pa.Array, schema: AvroType, present: Mask | None, failures: RowFailures, path: str
) -> MatrixPart:
    symbols = enum_symbols(schema)
    if pa.types.is_dictionary(array.type):
        position = {symbol: index for index, symbol in enumerate(symbols)}
        lookup = np.array(
            [position.get(str(v), -1) for v in array.dictionary.to_pylist()] + [-1],
            dtype=np.int64,
        )
        indices = fixed_width_values(array.indices, np.int64).astype(np.int64)
        indices = lookup[np.clip(indices, 0, len(lookup) - 1)]
    else:
        found = pc.index_in(storage_of(array), value_set=pa.array(symbols))
        indices = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    unknown = indices < 0
    failures.add(
        unknown if present is None else unknown & present,
        f"{path}: value is not one of the enum symbols {symbols}",
    )
    matrix, lengths = encode_varints(np.where(unknown, 0, indices))
    return MatrixPart(matrix, lengths)


def _encode_text(
    array: pa.Array, schema: AvroType, present: Mask | None, failures: RowFailures, path: str
) -> list[Part]:
    num_rows = len(array)
    absent = None if present is None else ~present
    kind = array.type
    if logical_type(schema) == "decimal" and pa.types.is_uint64(kind):
        array, kind = unsigned_as_decimal(array), pa.decimal128(20, 0)
    if logical_type(schema) == "decimal" and pa.types.is_decimal(kind):
        if not (pa.types.is_decimal128(kind) or pa.types.is_decimal256(kind)):
            array = array.cast(pa.decimal128(kind.precision, kind.scale))
        if array.type.scale != int(schema.get("scale", 0)):
            raise TypeError(f"{path}: Arrow {kind} does not have the scale of {schema}")
        parts, too_wide = encode_decimals(array, int(schema["precision"]))
        failures.add(
            too_wide if present is None else too_wide & present,
            f"{path}: decimal has more digits than precision {schema['precision']}",
        )
        return [part.without(absent) for part in parts]
    if isinstance(kind, pa.BaseExtensionType) and kind.storage_type == pa.binary(16):
        return [encode_uuids(array).without(absent)]
    storage = storage_of(array)
    if pa.types.is_dictionary(storage.type):
        storage = storage.dictionary_decode()
    offset_type: type[np.signedinteger[Any]]
    if pa.types.is_string(storage.type) or pa.types.is_binary(storage.type):
        binary_kind, offset_type = pa.binary(), np.int32
    elif pa.types.is_large_string(storage.type) or pa.types.is_large_binary(storage.type):
        binary_kind, offset_type = pa.large_binary(), np.int64
    elif pa.types.is_string_view(storage.type) or pa.types.is_binary_view(storage.type):
        return _encode_text(storage.cast(pa.large_binary()), schema, present, failures, path)
    else:
        raise TypeError(f"{path}: cannot encode Arrow {array.type} as Avro {schema}")
    offsets = np.frombuffer(
        storage.buffers()[1], dtype=offset_type, count=storage.offset + num_rows + 1
    )[storage.offset :]
    lengths = np.diff(offsets).astype(np.int64)
    data = pa.Array.from_buffers(
        binary_kind, num_rows, [None, *storage.buffers()[1:3]], offset=storage.offset
    )
    if absent is not None:
        blank = absent & (lengths != 0)
        lengths = np.where(absent, 0, lengths)
        if blank.any():  # null slots may keep bytes in Arrow; they must not reach the body
            data = pc.if_else(pa.array(~blank), data, pa.scalar(b"", binary_kind))
    matrix, varint_lengths = encode_varints(lengths)
    length_part = MatrixPart(matrix, varint_lengths).without(absent)
    if absent is None and varint_lengths is None and num_rows:
        width = int(lengths.max())
        if width == 0:
            return [length_part]
        if width == int(lengths.min()):  # one length for all: the text is a (n, width) matrix
            first = int(offsets[0])
            raw = np.frombuffer(storage.buffers()[2], dtype=np.uint8)[first:]
            return [length_part, MatrixPart(raw[: num_rows * width].reshape(num_rows, width))]
    return [length_part, data]


def encode_uuids(array: pa.Array) -> MatrixPart:
    """Each UUID as an Avro string: the length byte (36) then the canonical text."""
    text = uuid_text_matrix(uuid_bytes(array))
    matrix = np.empty((len(text), UUID_TEXT_LENGTH + 1), dtype=np.uint8)
    matrix[:, 0] = zigzag_of_index(UUID_TEXT_LENGTH)
    matrix[:, 1:] = text
    return MatrixPart(matrix, np.full(len(text), UUID_TEXT_LENGTH + 1, dtype=np.int64))
