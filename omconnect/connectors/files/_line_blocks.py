"""Sizing the read blocks of line-based formats (csv, jsonl) to the configured batch size.

Arrow's streaming readers return one record batch per block of bytes and read several blocks
ahead, so blocks stay small (at most 1 MiB: a few MiB of read-ahead whatever the file size);
the file cursor joins blocks into batches of ``batch_size`` rows.
"""

from __future__ import annotations

from pathlib import Path

_SAMPLE_BYTES = 1 << 20
_MIN_BLOCK_BYTES = 64 << 10
_MAX_BLOCK_BYTES = 1 << 20


def line_block_size(path: Path, batch_size: int) -> int:
    """Bytes per read block: about ``batch_size`` lines, at most 1 MiB."""
    with path.open("rb") as file:
        sample = file.read(_SAMPLE_BYTES)
    lines = max(sample.count(b"\n"), 1)
    estimate = len(sample) * batch_size // lines
    return max(_MIN_BLOCK_BYTES, min(_MAX_BLOCK_BYTES, estimate))
