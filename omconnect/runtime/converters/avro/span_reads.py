"""Reading many values at once out of one byte buffer, at arbitrary positions.

Fixed-width values (doubles, the 8-byte words varints are decoded from) are gathered through
an overlapping numpy view with one item starting at every byte, so a single fancy index reads
them all. Byte spans (Avro strings and bytes) become an Arrow binary array by describing the
buffer as spans and gaps, alternately, and letting Arrow's ``take`` copy every other value;
spans that all have one length are gathered as fixed-size items instead, which is faster.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

_INT32_LIMIT = 2**31 - 1
_HIGH_BITS = 0x8080808080808080


def unaligned_values(buffer: U8, dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    """A read-only view of ``buffer`` as values of ``dtype`` starting at every byte: item i
    is the value whose first byte is ``buffer[i]``."""
    kind = np.dtype(dtype)
    view: npt.NDArray[np.generic] = np.ndarray(
        shape=(max(len(buffer) - kind.itemsize + 1, 0),),
        dtype=kind,
        buffer=buffer,
        strides=(1,),
    )
    view.flags.writeable = False
    return view


def binary_of_spans(buffer: U8, starts: I64, lengths: I64) -> pa.Array:
    """The bytes ``buffer[starts[i] : starts[i] + lengths[i]]`` as a binary array.

    Spans must be in buffer order and must not overlap (each starts at or after the end of
    the one before), which is how the fields of consecutive bodies lie.

    Raises:
        ValueError: the spans are out of order or overlap.
    """
    n = len(starts)
    if n and int(lengths.min()) == int(lengths.max()):
        return _binary_of_equal_spans(buffer, starts, int(lengths[0]))
    large = len(buffer) > _INT32_LIMIT
    index_type = np.int64 if large else np.int32
    # Offsets of 2n values: span 0, the gap after it, span 1, ..., the last span, then an
    # empty value. Spans are the even values.
    offsets = np.empty(2 * n + 1, dtype=index_type)
    offsets[0 : 2 * n : 2] = starts
    ends = starts + lengths
    offsets[1 : 2 * n : 2] = ends
    offsets[2 * n] = ends[-1] if n else 0
    if n and (np.diff(offsets) < 0).any():
        raise ValueError("byte spans are out of order or overlap")
    kind = pa.large_binary() if large else pa.binary()
    spans_and_gaps = pa.Array.from_buffers(
        kind, 2 * n, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)]
    )
    return spans_and_gaps.take(pa.array(np.arange(0, 2 * n, 2, dtype=np.int64)))


def _binary_of_equal_spans(buffer: U8, starts: I64, length: int) -> pa.Array:
    """Spans of one ``length``: each copied as one opaque item of that size."""
    n = len(starts)
    if length == 0:
        data = np.zeros(0, dtype=np.uint8)
    else:
        data = unaligned_values(buffer, f"V{length}")[starts].view(np.uint8)
    large = n * length > _INT32_LIMIT
    offsets = np.arange(n + 1, dtype=np.int64) * length
    return pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        n,
        [None, pa.py_buffer(offsets if large else offsets.astype(np.int32)), pa.py_buffer(data)],
    )


def all_ascii(binary: pa.Array) -> bool:
    """True when every byte of the values of a binary array is below 0x80 (ASCII text, which
    is valid UTF-8 as it is)."""
    if not len(binary):
        return True
    offset_type = np.int64 if binary.type == pa.large_binary() else np.int32
    offsets = np.frombuffer(binary.buffers()[1], dtype=offset_type)
    first, last = int(offsets[binary.offset]), int(offsets[binary.offset + len(binary)])
    if last == first:
        return True
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[first:last]
    whole = len(data) // 8 * 8
    # Eight bytes per step: OR everything together, then look at the high bits once.
    high = int(np.bitwise_or.reduce(data[:whole].view(np.uint64))) if whole else 0
    high |= int(np.bitwise_or.reduce(data[whole:])) if whole < len(data) else 0
    return high & _HIGH_BITS == 0
