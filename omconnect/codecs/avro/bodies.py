"""Encoded fields as byte parts, assembled into one message body per row.

Column encoders describe each field as parts, in field order:

- a ``MatrixPart``: a (n, w) uint8 matrix whose row i holds that row's bytes left-aligned (or
  right-aligned), with either every row using all ``w`` bytes (``lengths`` is None: a
  fixed-width part, such as a double, a union branch, or a varint whose values all have one
  length) or row i using ``lengths[i]`` of them (0 for rows that contribute nothing, such as
  the value of a null field);
- a ``pa.BinaryArray`` of n values, used as-is (string data straight from Arrow buffers).

``assemble`` turns a list of parts into one body per row. Neighbouring matrix parts are
grouped into runs. A run of fixed-width parts is written side by side into one (n, w) matrix
whose bytes already are the rows' bytes, end to end: it becomes a binary array without another
copy. A run holding variable-width parts (varints of several lengths, the values of nullable
fields) is written the same way and then compacted with one boolean mask, which keeps row
order. Long fixed stretches next to variable parts get a run of their own, since compacting
costs per byte and joining costs per run. The runs and the string data between them are
finally joined row-wise by Arrow's ``binary_join_element_wise`` in C++ (nothing to join when
the whole body is one run).

The encoder and the decoder make one numpy pass per field over all rows of what they are
given. Those passes run several times faster while the rows' bytes stay in the CPU cache, so
a batch of more than a few megabytes is coded piece by piece (``rows_per_piece``) and the
results are joined; joining costs one copy, far less than the cache misses it saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Offsets of pa.binary() are int32; larger batches are joined as large_binary.
_INT32_LIMIT = 2**31 - 1
# A fixed stretch at least this wide is not compacted with its variable neighbours: a join
# argument costs about as much per row as compacting this many bytes.
_OWN_RUN_BYTES = 16

PIECE_BYTES = 12 << 20
"""About how many bytes of rows (Arrow columns, or Avro bodies) are coded together."""


@dataclass
class MatrixPart:
    """Bytes of each row in a matrix row, with how many of them each row uses: all of them
    when ``lengths`` is None, else the first ``lengths[i]`` bytes, or the last ones when
    ``right_aligned``."""

    matrix: U8
    lengths: I64 | None = None
    right_aligned: bool = False

    @property
    def width(self) -> int:
        """Bytes per matrix row (the most any row uses)."""
        return int(self.matrix.shape[1])

    @property
    def fixed(self) -> bool:
        """True when every row uses all ``width`` bytes."""
        return self.lengths is None

    def row_lengths(self) -> I64:
        """How many bytes each row uses."""
        if self.lengths is None:
            return np.full(len(self.matrix), self.width, dtype=np.int64)
        return self.lengths

    def mark_used(self, out: Mask) -> None:
        """Write into ``out`` (a (n, width) view) which bytes of the matrix are used."""
        if self.lengths is None:
            out[...] = True
            return
        columns = np.arange(self.width)
        if self.right_aligned:
            np.greater_equal(columns, (self.width - self.lengths)[:, None], out=out)
        else:
            np.less(columns, self.lengths[:, None], out=out)

    def without(self, absent: Mask | None) -> MatrixPart:
        """The same part with rows where ``absent`` is True contributing nothing."""
        if absent is None or not absent.any():
            return self
        return MatrixPart(self.matrix, np.where(absent, 0, self.row_lengths()), self.right_aligned)


Part: TypeAlias = MatrixPart | pa.Array
"""What one field contributes to each row: a matrix part, or a binary array."""


def constant_part(num_rows: int, value: bytes) -> MatrixPart:
    """The same bytes on every row (a union branch, a header ...), without a copy per row."""
    row = np.frombuffer(value, dtype=np.uint8)
    return MatrixPart(np.broadcast_to(row, (num_rows, len(value))))


def byte_part(num_rows: int, values: U8, absent: Mask | None = None) -> MatrixPart:
    """One byte per row (``values`` has n entries); rows where ``absent`` give none."""
    return MatrixPart(values.reshape(num_rows, 1)).without(absent)


def fixed_bytes_part(values: npt.NDArray[np.generic]) -> MatrixPart:
    """The little-endian bytes of fixed-width numpy values (doubles ...), one value per row."""
    contiguous = np.ascontiguousarray(values)
    return MatrixPart(contiguous.view(np.uint8).reshape(len(contiguous), contiguous.itemsize))


def rows_per_piece(num_rows: int, nbytes: int) -> int:
    """How many of ``num_rows`` rows (``nbytes`` in all) make about ``PIECE_BYTES`` bytes;
    at least one, and ``num_rows`` (or 1) when everything fits in one piece."""
    if nbytes <= PIECE_BYTES or num_rows == 0:
        return max(num_rows, 1)
    return max(1, num_rows * PIECE_BYTES // nbytes)


def binary_data_size(array: pa.Array) -> int:
    """Bytes of values in a binary or large_binary array (what joining them copies)."""
    if not len(array):
        return 0
    offset_type = np.int64 if array.type == pa.large_binary() else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)
    return int(offsets[array.offset + len(array)]) - int(offsets[array.offset])


def concat_binary(pieces: list[pa.Array]) -> pa.Array:
    """Binary arrays one after the other, as large_binary when int32 offsets cannot hold
    them."""
    large = any(p.type == pa.large_binary() for p in pieces) or (
        sum(binary_data_size(p) for p in pieces) > _INT32_LIMIT
    )
    kind = pa.large_binary() if large else pa.binary()
    return pa.concat_arrays([p if p.type == kind else p.cast(kind) for p in pieces])


def assemble(parts: list[Part], num_rows: int, prefix: bytes = b"") -> pa.Array:
    """Each row's parts concatenated in order, after ``prefix``: one binary value per row."""
    items: list[Part] = [constant_part(num_rows, prefix), *parts] if prefix else list(parts)
    pieces: list[pa.Array] = []
    stretch: list[MatrixPart] = []
    for item in items:
        if isinstance(item, MatrixPart):
            if item.width:
                stretch.append(item)
            continue
        pieces.extend(_materialise(run, num_rows) for run in _runs(stretch))
        stretch = []
        pieces.append(item)
    pieces.extend(_materialise(run, num_rows) for run in _runs(stretch))
    if not pieces:
        return _binary_from(np.zeros(num_rows + 1, dtype=np.int64), np.zeros(0, np.uint8))
    large = any(p.type == pa.large_binary() for p in pieces) or (
        sum(binary_data_size(p) for p in pieces) > _INT32_LIMIT
    )
    kind = pa.large_binary() if large else pa.binary()
    args = [p.cast(kind) if p.type != kind else p for p in pieces]
    if len(args) == 1:
        return args[0]
    return pc.binary_join_element_wise(*args, pa.scalar(b"", kind))


def _runs(parts: list[MatrixPart]) -> list[list[MatrixPart]]:
    """Neighbouring parts grouped into runs: wide fixed stretches alone, the rest together."""
    runs: list[list[MatrixPart]] = []
    mixed: list[MatrixPart] = []
    fixed: list[MatrixPart] = []
    for part in [*parts, None]:
        if part is not None and part.fixed:
            fixed.append(part)
            continue
        if sum(p.width for p in fixed) >= _OWN_RUN_BYTES or (part is None and not mixed):
            if mixed:
                runs.append(mixed)
                mixed = []
            if fixed:
                runs.append(fixed)
        else:
            mixed.extend(fixed)
        fixed = []
        if part is not None:
            mixed.append(part)
    if mixed:
        runs.append(mixed)
    return runs


def _materialise(run: list[MatrixPart], num_rows: int) -> pa.Array:
    """One run's bytes for every row, as a binary array."""
    width = sum(p.width for p in run)
    if all(p.fixed for p in run):
        only = run[0].matrix
        if len(run) == 1 and only.flags.c_contiguous:
            matrix = only  # already laid out row after row: no copy
        else:
            matrix = _side_by_side(run, num_rows, width)
        offsets = np.arange(0, (num_rows + 1) * width, width, dtype=np.int64)
        return _binary_from(offsets, matrix.reshape(-1))
    matrix = _side_by_side(run, num_rows, width)
    used = np.ones((num_rows, width), dtype=np.bool_)
    lengths = np.full(num_rows, sum(p.width for p in run if p.fixed), dtype=np.int64)
    column = 0
    for part in run:
        if part.lengths is not None:
            part.mark_used(used[:, column : column + part.width])
            lengths += part.lengths
        column += part.width
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _binary_from(offsets, matrix[used])


def _side_by_side(run: list[MatrixPart], num_rows: int, width: int) -> U8:
    """The matrices of ``run`` next to each other in one (n, width) matrix."""
    matrix = np.empty((num_rows, width), dtype=np.uint8)
    # Parts that are the same on every row (union branches, the header) are first laid out
    # in one template row, copied to all rows at once.
    template = np.zeros(width, dtype=np.uint8)
    constant = [p.matrix.strides[0] == 0 and len(p.matrix) > 0 for p in run]
    column = 0
    for part, same in zip(run, constant, strict=True):
        if same:
            template[column : column + part.width] = part.matrix[0]
        column += part.width
    if any(constant):
        matrix.view(f"V{width}")[...] = template.view(f"V{width}")
    column = 0
    for part, same in zip(run, constant, strict=True):
        if not same:
            # Copying each row's bytes as one opaque item is much faster than byte by byte.
            target = matrix[:, column : column + part.width].view(f"V{part.width}")
            target[...] = _as_items(part.matrix)
        column += part.width
    return matrix


def _as_items(matrix: U8) -> npt.NDArray[np.void]:
    """A (n, w) byte matrix as (n, 1) items of w opaque bytes (a view when possible)."""
    if matrix.strides[1] != 1:
        matrix = np.ascontiguousarray(matrix)
    return matrix.view(f"V{matrix.shape[1]}")


def _binary_from(offsets: I64, data: U8) -> pa.Array:
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
