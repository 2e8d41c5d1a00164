"""What one read of a file covers: the argument of ``FileSourceTask.read_blocks``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass
class ReadRange:
    """The part of a file that one read (a *pass*) covers.

    Parquet and Avro files are read whole; ``skip_rows`` rows at their start were delivered
    already and are left out.

    Line formats (csv, jsonl) read the bytes ``[start, end)``: ``start`` is 0 or the start of
    a line, ``end`` the end of the last whole line the file had when the pass was planned.
    ``skip_rows`` rows after ``start`` were delivered already (a pass that stopped half way
    is resumed from its start). A format with a header reads the file's first line before
    ``start`` (see ``_line_blocks.line_chunks``). ``first_line`` is the line number of the
    line at ``start``, for naming bad lines. ``types`` are the column types the file's first
    rows were read with, when ``start`` is past them: later rows keep those types.

    Attributes:
        reached: set by the reader of a line format once it read to the end: where the last
            record it read ends (``end``, or earlier when ``end`` fell inside a quoted value).
        reached_line: the line number at ``reached``.
    """

    skip_rows: int = 0
    start: int = 0
    end: int | None = None
    first_line: int = 1
    types: dict[str, pa.DataType] = field(default_factory=dict)
    reached: int | None = None
    reached_line: int | None = None
