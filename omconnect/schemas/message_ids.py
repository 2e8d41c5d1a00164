"""``MessageIdRuns``: message ids derived from positions, carried as a few runs of numbers.

A derived id is ``<prefix>-<index>``: a 16-hex-digit digest of the position a source
partition had reached, a dash, and the row's index since that position in hex (8 digits, or
16 for a polled batch with an index past ``2**32``). The rows of one polled batch fall into a
few runs, each one prefix and consecutive indexes, so the runtime carries the runs from the
source to the broker and back to the sink and builds the strings only where someone reads
them (``to_array``, cached). Ids a source sets itself (a CDC commit LSN) travel as strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pyarrow as pa

PREFIX_WIDTH = 16
_DIGITS = (8, 16)
# What one run counts for in ``nbytes``: its prefix, first index and length.
_RUN_BYTES = PREFIX_WIDTH + 8 + 8

# Byte value -> its two hex digits, as one uint16 in memory order.
_BYTE_HEX = np.frombuffer(
    b"".join(f"{value:02x}".encode() for value in range(256)), dtype=np.uint16
)


class IdRun(NamedTuple):
    """``length`` consecutive rows with ids ``<prefix>-<first_index + i>``, the index written
    with ``digits`` hex digits."""

    prefix: str
    first_index: int
    length: int
    digits: int


class MessageIdRuns:
    """The ids of consecutive rows as runs; immutable.

    Slicing and joining stay runs; ``take`` and ``filter`` build the strings (the rare paths:
    partitioning by key, dropping rows). Two values are equal when they stand for the same
    strings in the same order (a ``pa.StringArray`` of them included).
    """

    def __init__(self, runs: Iterable[IdRun] = ()) -> None:
        merged: list[IdRun] = []
        for run in runs:
            if run.length <= 0:
                continue
            if merged and _continues(merged[-1], run):
                last = merged[-1]
                merged[-1] = last._replace(length=last.length + run.length)
            else:
                merged.append(run)
        self._runs = tuple(merged)
        self._length = sum(run.length for run in merged)

    @classmethod
    def derived(
        cls, prefixes: Sequence[str], first_indexes: Sequence[int], lengths: Sequence[int]
    ) -> MessageIdRuns:
        """The ids of one polled batch, its runs in row order: 8 index digits for all of
        them, or 16 when an index passes ``2**32``.

        Raises:
            ValueError: a prefix is not 16 hex digits, or an index is negative.
        """
        last = max(
            (f + n - 1 for f, n in zip(first_indexes, lengths, strict=True) if n > 0), default=0
        )
        digits = 16 if last >= 1 << 32 else 8
        runs = [
            IdRun(p, f, n, digits) for p, f, n in zip(prefixes, first_indexes, lengths, strict=True)
        ]
        for run in runs:
            _check(run)
        return cls(runs)

    @property
    def runs(self) -> tuple[IdRun, ...]:
        return self._runs

    def __len__(self) -> int:
        return self._length

    @property
    def nbytes(self) -> int:
        """The compact size (what batch sizes count), not that of the strings."""
        return _RUN_BYTES * len(self._runs)

    def __repr__(self) -> str:
        return f"MessageIdRuns({list(self._runs)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MessageIdRuns):
            return self._runs == other._runs
        if isinstance(other, pa.Array):
            return self.to_array().equals(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._runs)

    def slice(self, offset: int = 0, length: int | None = None) -> MessageIdRuns:
        """Rows ``[offset, offset + length)`` (clamped to the rows there are, as Arrow's)."""
        start = min(max(offset, 0), self._length)
        end = self._length if length is None else min(self._length, start + max(length, 0))
        cut: list[IdRun] = []
        row = 0
        for run in self._runs:
            lo, hi = max(start, row), min(end, row + run.length)
            if lo < hi:
                cut.append(run._replace(first_index=run.first_index + lo - row, length=hi - lo))
            row += run.length
            if row >= end:
                break
        return MessageIdRuns(cut)

    def take(self, indices: pa.Array | np.ndarray | Sequence[int]) -> pa.StringArray:
        """The ids of rows ``indices``, as strings."""
        return self.to_array().take(indices)

    def filter(self, mask: pa.BooleanArray) -> pa.StringArray:
        """The ids of the rows where ``mask`` is true, as strings."""
        return self.to_array().filter(mask)

    @classmethod
    def concat(cls, parts: Sequence[MessageIdRuns]) -> MessageIdRuns:
        """The rows of ``parts`` in order (a run that continues the one before joins it)."""
        return cls(run for part in parts for run in part._runs)

    def to_array(self) -> pa.StringArray:
        """The ids as strings, built on the first call and kept."""
        return self._strings

    @cached_property
    def _strings(self) -> pa.StringArray:
        if not self._runs:
            return pa.array([], pa.string())
        pieces: list[pa.StringArray] = []
        group: list[IdRun] = []
        for run in self._runs:
            if group and run.digits != group[0].digits:
                pieces.append(_join_ids(group))
                group = []
            group.append(run)
        pieces.append(_join_ids(group))
        return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)

    def to_bytes(self) -> bytes:
        """A compact form for storage: JSON ``[[prefix, first index, length, digits], ...]``."""
        return json.dumps([list(run) for run in self._runs], separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageIdRuns:
        """The runs ``to_bytes`` wrote.

        Raises:
            ValueError: ``data`` is not runs in that form.
        """
        try:
            items = json.loads(data)
            if not isinstance(items, list):
                raise TypeError("not a list")
            runs = [IdRun(str(p), int(f), int(n), int(d)) for p, f, n, d in items]
        except (ValueError, TypeError) as error:
            raise ValueError(f"not message id runs: {data[:80]!r}") from error
        for run in runs:
            _check(run)
        return cls(runs)


def _continues(before: IdRun, after: IdRun) -> bool:
    return (
        after.prefix == before.prefix
        and after.digits == before.digits
        and after.first_index == before.first_index + before.length
    )


def _check(run: IdRun) -> None:
    if len(run.prefix) != PREFIX_WIDTH or not all(c in "0123456789abcdef" for c in run.prefix):
        raise ValueError(f"a message id prefix is {PREFIX_WIDTH} hex digits, not {run.prefix!r}")
    if run.digits not in _DIGITS:
        raise ValueError(f"message id indexes have 8 or 16 hex digits, not {run.digits}")
    if run.first_index < 0 or run.length < 0:
        raise ValueError(f"a message id run has a negative index or length: {run}")
    if run.length and run.first_index + run.length - 1 >= 1 << (4 * run.digits):
        raise ValueError(f"a message id index does not fit in {run.digits} hex digits: {run}")


def _join_ids(runs: Sequence[IdRun]) -> pa.StringArray:
    """``<prefix>-<index in hex>`` for runs of one index width, written straight into the
    string array's data buffer (one numpy pass per character column, no per-row string)."""
    lengths = np.fromiter((run.length for run in runs), np.int64, len(runs))
    n = int(lengths.sum())
    starts = np.zeros(len(runs), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    first = np.fromiter((run.first_index for run in runs), np.uint64, len(runs))
    index = np.arange(n, dtype=np.uint64) - np.repeat(starts.astype(np.uint64), lengths)
    index += np.repeat(first, lengths)
    # The index as big-endian bytes, each byte two hex digits.
    index_bytes = index.astype(">u8" if runs[0].digits == 16 else ">u4").view(np.uint8)
    index_bytes = index_bytes.reshape(n, -1)
    digits = 2 * index_bytes.shape[1]
    width = PREFIX_WIDTH + 1 + digits
    data = np.empty((n, width), dtype=np.uint8)
    if len({run.prefix for run in runs}) == 1:
        data[:, : PREFIX_WIDTH + 1] = np.frombuffer(f"{runs[0].prefix}-".encode(), dtype=np.uint8)
    else:
        segment = np.repeat(np.arange(len(runs)), lengths)
        prefix_bytes = np.frombuffer("".join(r.prefix for r in runs).encode("ascii"), np.uint8)
        data[:, :PREFIX_WIDTH] = prefix_bytes.reshape(-1, PREFIX_WIDTH)[segment]
        data[:, PREFIX_WIDTH] = ord("-")
    data[:, PREFIX_WIDTH + 1 :] = _BYTE_HEX[index_bytes].view(np.uint8).reshape(n, digits)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
