"""The rows of a batch found unencodable so far, with the first reason for each."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from omconnect.runtime.converters.avro.errors import InvalidAvroValue

Mask = npt.NDArray[np.bool_]


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
