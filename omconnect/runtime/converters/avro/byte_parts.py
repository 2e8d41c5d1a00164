"""Per-row byte parts and their assembly into one message body per row.

Column encoders describe what each row contributes as parts, in field order:

- a ``MatrixPart``: a (n, w) uint8 matrix whose row i holds that row's bytes left-aligned
  (or right-aligned), with ``lengths[i]`` of them used (0 for rows that contribute nothing,
  such as the value of a null field);
- a ``pa.BinaryArray`` of n values, used as-is (string data straight from Arrow buffers).

Runs of neighbouring matrix parts are concatenated side by side and compacted with one
boolean mask, which keeps row order; the resulting binary arrays, and the string data between
them, are then joined row-wise by Arrow's ``binary_join_element_wise`` in C++.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

# Offsets of pa.binary() are int32; larger batches are joined as large_binary.
_INT32_LIMIT = 2**31 - 1


@dataclass
class MatrixPart:
    """Bytes of each row in a matrix row, with how many of them each row uses: the first
    ``lengths[i]`` bytes, or the last ones when ``right_aligned``."""

    matrix: npt.NDArray[np.uint8]
    lengths: npt.NDArray[np.int64]
    right_aligned: bool = False

    def used(self) -> npt.NDArray[np.bool_]:
        """Which bytes of the matrix are part of the body."""
        columns = np.arange(self.matrix.shape[1])
        if self.right_aligned:
            return columns >= (self.matrix.shape[1] - self.lengths)[:, None]
        return columns < self.lengths[:, None]

    def without(self, absent: npt.NDArray[np.bool_] | None) -> MatrixPart:
        """The same part with rows where ``absent`` is True contributing nothing."""
        if absent is None or not absent.any():
            return self
        return MatrixPart(self.matrix, np.where(absent, 0, self.lengths), self.right_aligned)


Part: TypeAlias = MatrixPart | pa.Array
"""What one field contributes to each row: a matrix part, or a binary array."""


def constant_part(num_rows: int, value: int, present: npt.NDArray[np.bool_] | None) -> MatrixPart:
    """One byte ``value`` on every present row (a union branch, an enum of one symbol...)."""
    matrix = np.full((num_rows, 1), value, dtype=np.uint8)
    lengths = np.ones(num_rows, dtype=np.int64)
    if present is not None:
        lengths[~present] = 0
    return MatrixPart(matrix, lengths)


def compact(parts: list[MatrixPart], num_rows: int) -> pa.Array:
    """Matrix parts side by side -> one binary array of each row's used bytes, in order."""
    if len(parts) == 1:
        matrix = np.ascontiguousarray(parts[0].matrix)
        lengths = parts[0].lengths
        used = parts[0].used()
    else:
        matrix = np.concatenate([p.matrix for p in parts], axis=1)
        used = np.concatenate([p.used() for p in parts], axis=1)
        lengths = np.sum([p.lengths for p in parts], axis=0)
    data = matrix[used]
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _binary_from(offsets, data)


def _binary_from(offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> pa.Array:
    num_rows = len(offsets) - 1
    if offsets[-1] <= _INT32_LIMIT:
        return pa.Array.from_buffers(
            pa.binary(),
            num_rows,
            [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
        )
    return pa.Array.from_buffers(
        pa.large_binary(), num_rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def assemble(parts: list[Part], num_rows: int, prefix: bytes = b"") -> pa.Array:
    """Each row's parts concatenated in order, after ``prefix``: one binary value per row."""
    pieces: list[pa.Array] = []
    run: list[MatrixPart] = []
    for part in parts:
        if isinstance(part, MatrixPart):
            run.append(part)
            continue
        if run:
            pieces.append(compact(run, num_rows))
            run = []
        pieces.append(part)
    if run:
        pieces.append(compact(run, num_rows))
    if not pieces:
        pieces.append(pa.array([b""] * num_rows, pa.binary()))
    large = any(p.type == pa.large_binary() for p in pieces) or (
        sum(p.nbytes for p in pieces) + num_rows * len(prefix) > _INT32_LIMIT
    )
    kind = pa.large_binary() if large else pa.binary()
    args: list[pa.Array | pa.Scalar] = [p.cast(kind) if p.type != kind else p for p in pieces]
    if prefix:
        args.insert(0, pa.scalar(prefix, kind))
    if len(args) == 1:
        return args[0]
    return pc.binary_join_element_wise(*args, pa.scalar(b"", kind))


def binary_with_nulls(encoded: pa.Array, keep: npt.NDArray[np.bool_], num_rows: int) -> pa.Array:
    """Spread ``encoded`` (one value per True of ``keep``) over ``num_rows`` rows, with nulls
    on the False rows."""
    encoded_offsets = np.frombuffer(
        encoded.buffers()[1], dtype=np.int64 if encoded.type == pa.large_binary() else np.int32
    )[encoded.offset : encoded.offset + len(encoded) + 1].astype(np.int64)
    lengths = np.zeros(num_rows, dtype=np.int64)
    lengths[keep] = np.diff(encoded_offsets)
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    offsets += encoded_offsets[0]
    validity = pa.array(keep).buffers()[1]
    kind = encoded.type
    index_type = np.int64 if kind == pa.large_binary() else np.int32
    return pa.Array.from_buffers(
        kind,
        num_rows,
        [validity, pa.py_buffer(offsets.astype(index_type)), encoded.buffers()[2]],
        null_count=int(num_rows - keep.sum()),
    )
