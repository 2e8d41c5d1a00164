"""Sizing the read blocks of line-based formats (csv, jsonl) to the configured batch size.

Arrow's streaming readers return one record batch per block of bytes; sizing the block from
the average line length at the head of the file makes a block hold about ``batch_size`` rows.
"""

from __future__ import annotations

from pathlib import Path

_SAMPLE_BYTES = 1 << 20
_MIN_BLOCK_BYTES = 64 << 10
_MAX_BLOCK_BYTES = 64 << 20


def line_block_size(path: Path, batch_size: int) -> int:
    """Bytes per read block so that one block holds about ``batch_size`` lines."""
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    lines = max(sample.count(b"\n"), 1)
    estimate = len(sample) * batch_size // lines
    return max(_MIN_BLOCK_BYTES, min(_MAX_BLOCK_BYTES, estimate))
