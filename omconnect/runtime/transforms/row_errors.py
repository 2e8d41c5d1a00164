"""``TransformRowErrors``: some rows of a batch failed a transform, the others went through."""

from __future__ import annotations

from omconnect.schemas.record import RecordBatch


class TransformRowErrors(Exception):
    """Raised by a transform when some rows cannot be transformed but the rest can.

    The runtime sends ``rows`` of the batch it passed to ``apply`` to the dead letter topic
    (stage ``transform``, the reason from ``rows``) and carries on with ``good``, the
    transformed batch of every other row. ``good`` comes from ``RecordBatch.filter``, so its
    positions still cover the failed rows: once ``good`` is delivered and the dead letters
    are written, those positions can be committed.

    Attributes:
        rows: index of a failed row in the input batch -> why it failed.
        good: the transformed batch of the rows that did not fail.
    """

    def __init__(self, rows: dict[int, str], good: RecordBatch) -> None:
        first = min(rows)
        super().__init__(f"{len(rows)} row(s) failed; first, row {first}: {rows[first]}")
        self.rows = rows
        self.good = good
