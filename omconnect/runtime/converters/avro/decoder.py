"""Vectorised decoding of Avro bodies into an Arrow record batch.

All bodies are decoded together, field by field, with one cursor per body (see
``body_cursor``). After the last field every cursor must sit exactly at its body's end;
a body that breaks any rule on the way is reported, never allowed to fail the others.

Large batches are decoded a few megabytes of bodies at a time (see ``batch_pieces``) and the
pieces joined into one batch at the end.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omconnect.runtime.converters.avro.avro_types import AvroType, expanded
from omconnect.runtime.converters.avro.batch_pieces import rows_per_piece
from omconnect.runtime.converters.avro.body_cursor import BodyCursor
from omconnect.runtime.converters.avro.column_readers import read_record
from omconnect.runtime.converters.avro.errors import CorruptBodiesError

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
