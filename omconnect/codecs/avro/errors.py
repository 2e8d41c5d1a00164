"""What goes wrong per row in the Avro body codec: the errors it raises, and the collector of
rows found unencodable while a batch is encoded."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Mask = npt.NDArray[np.bool_]


class UnencodableRowsError(ValueError):
    """Some rows of a batch hold values the Avro schema cannot carry.

    Attributes:
        rows: row index -> the reason that row cannot be encoded.
    """

    def __init__(self, rows: dict[int, Exception]) -> None:
        self.rows = dict(sorted(rows.items()))
        first = next(iter(self.rows.items()), None)
        detail = f"; row {first[0]}: {first[1]}" if first else ""
        super().__init__(f"{len(self.rows)} row(s) cannot be encoded as Avro{detail}")


class CorruptBodiesError(ValueError):
    """Some message bodies are not valid Avro for the schema they claim.

    Attributes:
        rows: body index -> what is wrong with that body.
    """

    def __init__(self, rows: dict[int, Exception]) -> None:
        self.rows = dict(sorted(rows.items()))
        first = next(iter(self.rows.items()), None)
        detail = f"; body {first[0]}: {first[1]}" if first else ""
        super().__init__(f"{len(self.rows)} corrupt Avro body(ies){detail}")


class InvalidAvroValue(ValueError):
    """Why one row or body failed, naming the field (the per-row entry of the errors above)."""


class RowFailures:
    """Rows found unencodable so far; a row keeps the first reason it was given.

    Attributes:
        mask: True for each failed row.
        reasons: failed row -> why, naming the field.
    """

    def __init__(self, num_rows: int) -> None:
        self.mask = np.zeros(num_rows, dtype=np.bool_)
        self.reasons: dict[int, Exception] = {}

    def add(self, rows: Mask, reason: str) -> None:
        """Fail the rows where ``rows`` is True (one flag per row of the batch)."""
        new = rows & ~self.mask
        if not new.any():
            return
        error = InvalidAvroValue(reason)  # one instance shared by every row it concerns
        for row in np.flatnonzero(new).tolist():
            self.reasons[row] = error
        self.mask |= new

    def add_each(self, errors: dict[int, Exception], path: str) -> None:
        """Fail each row of ``errors`` with its own reason, prefixed by the field ``path``."""
        for row, error in errors.items():
            if not self.mask[row]:
                self.reasons[row] = InvalidAvroValue(f"{path}: {error}")
                self.mask[row] = True

    def add_each_of(self, rows: npt.NDArray[np.int64], errors: list[Exception]) -> None:
        """Fail ``rows[i]`` with ``errors[i]`` (already naming the field); a row named more
        than once keeps its first error."""
        for row, error in zip(rows.tolist(), errors, strict=True):
            if not self.mask[row]:
                self.reasons[row] = error
                self.mask[row] = True
