"""Errors of the Avro body codec: rows that cannot be encoded, bodies that cannot be decoded."""

from __future__ import annotations


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
