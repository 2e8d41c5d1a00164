"""Splitting large batches into pieces that the codec works through one at a time.

The encoder and the decoder make one numpy pass per field over all rows of what they are
given. Those passes run several times faster while the rows' bytes stay in the CPU cache, so
a batch of more than a few megabytes is coded piece by piece and the results are joined;
joining costs one copy, far less than the cache misses it saves.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

PIECE_BYTES = 12 << 20
"""About how many bytes of rows (Arrow columns, or Avro bodies) are coded together."""

_INT32_LIMIT = 2**31 - 1


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
