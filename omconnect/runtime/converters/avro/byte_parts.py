"""What one field contributes to each row's body, before the bodies are assembled.

Column encoders describe each field as parts, in field order:

- a ``MatrixPart``: a (n, w) uint8 matrix whose row i holds that row's bytes left-aligned (or
  right-aligned), with either every row using all ``w`` bytes (``lengths`` is None: a
  fixed-width part, such as a double, a union branch, or a varint whose values all have one
  length) or row i using ``lengths[i]`` of them (0 for rows that contribute nothing, such as
  the value of a null field);
- a ``pa.BinaryArray`` of n values, used as-is (string data straight from Arrow buffers).

``body_assembly`` turns a list of parts into one body per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


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
