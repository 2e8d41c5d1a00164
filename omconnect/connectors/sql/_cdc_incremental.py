"""Incremental snapshots of the ``postgres-cdc`` source, asked for through a signal table.

A user who needs a table read again (a topic lost, a consumer rebuilt, a table added to
``tables``) inserts a row into the signal table (``signal_table``, Debezium's
``signal.data.collection``; its columns are Debezium's ``id``, ``type``, ``data``)::

    INSERT INTO public.omconnect_signal (id, type, data) VALUES (
        'resnap-1', 'execute-snapshot', '{"data-collections": ["public.orders"]}');

The insert streams like any change (the signal table is in the publication) and the task
then reads the tables named, one chunk of ``incremental_chunk_size`` rows at a time in key
order, while streaming goes on: DBLog's watermark algorithm, as Debezium implements it.
For each chunk the task writes a low watermark (a non-transactional logical decoding
message), reads the chunk (in a snapshot of that moment), and writes a high watermark. Every
change of the table streamed between the two watermarks may be newer than the chunk's copy
of its row, so the chunk drops the rows of those keys; at the high watermark the rest of the
chunk is emitted as ``op: r`` events with ``source.snapshot`` ``incremental``. The window
opens earlier than Debezium's, when the task writes the low watermark rather than when it
comes back: a transaction whose commit is in the WAL just before the low watermark can
still be invisible to the chunk's snapshot (a commit becomes visible after its WAL flush),
and its changes, streamed before the watermark, would otherwise lose to the stale chunk row.
Dropping a chunk row for a key streamed meanwhile is always safe: the streamed event carries
the row as it is after that change. Streamed
changes thus always win over stale snapshot rows, and a consumer applying the events in
order ends with the table as it is.

Progress (the tables left and the last key emitted) is part of the stream's offset, so a run
stopped in the middle reads on from the chunk after the last one delivered; watermarks of an
earlier run are not this run's (each window has its own token) and are ignored.
``stop-snapshot`` (``data`` naming tables, or none for all) ends it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from omconnect.connectors.api import ConnectorError
from omconnect.connectors.sql._cdc_events import TableEvents

# The logical decoding message contents of a window: ``<kind>:<token>``.
LOW = "snapshot-low"
HIGH = "snapshot-high"

# Debezium's signal types this source acts on.
EXECUTE = "execute-snapshot"
STOP = "stop-snapshot"

# The signal table's columns, as Debezium names them.
SIGNAL_COLUMNS = ("id", "type", "data")


@dataclass
class Progress:
    """An incremental snapshot under way: the tables left to read (the first is being
    read) and the key after which its next chunk starts (None: from its start)."""

    signal: str
    tables: list[str]
    after: list[Any] | None = None

    def to_offset(self) -> dict[str, Any]:
        return {"signal": self.signal, "tables": list(self.tables), "after": self.after}

    @staticmethod
    def from_offset(stored: Any) -> Progress | None:
        if not stored:
            return None
        after = stored.get("after")
        return Progress(str(stored["signal"]), list(stored["tables"]), after)


@dataclass
class Window:
    """One chunk between its watermarks: ``rows`` (``Row`` structs, key order) read after
    the low watermark was written; ``seen`` holds the keys of the changes streamed while it
    is ``open`` (from when the low watermark was written, see the module docstring)."""

    token: str
    table: TableEvents
    rows: pa.StructArray
    last_key: list[Any] | None
    full: bool  # the chunk has as many rows as asked: there may be more
    open: bool = False
    truncated: bool = False  # the table was truncated inside the window: no row is current
    seen: list[pa.RecordBatch] = field(default_factory=list)

    def message(self, kind: str) -> str:
        return f"{kind}:{self.token}"

    def remaining(self) -> pa.StructArray:
        """The chunk's rows whose key no change streamed inside the window touched."""
        if self.truncated:
            return self.rows.slice(0, 0)
        if not self.seen or len(self.rows) == 0:
            return self.rows
        names = list(self.table.key)
        chunk = _key_texts([self.rows.field(name) for name in names])
        touched = pa.chunked_array(
            [_key_texts([batch.column(name) for name in names]) for batch in self.seen],
            pa.string(),
        )
        return self.rows.filter(pc.invert(pc.is_in(chunk, value_set=touched)))


def _key_texts(columns: list[pa.Array]) -> pa.Array:
    """One text per row identifying its key (the key columns' texts, joined)."""
    texts = [pc.cast(c, pa.string()) for c in columns]
    if len(texts) == 1:
        return texts[0]
    return pc.binary_join_element_wise(*texts, "\x1f")


def new_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Signal:
    id: str
    type: str
    tables: list[str] | None  # None: the signal names none (``stop-snapshot``: all)


def parse_signal(values: tuple[Any, ...], columns: dict[str, int]) -> Signal:
    """A signal row (its values as pgoutput sends them: texts as bytes).

    Raises:
        ConnectorError: ``data`` is not JSON, or names no tables for ``execute-snapshot``.
    """

    def text(name: str) -> str | None:
        value = values[columns[name]] if name in columns else None
        return value.decode() if isinstance(value, bytes) else None

    ident, kind, data = text("id") or "", (text("type") or "").strip(), text("data")
    tables: list[str] | None = None
    if data and data.strip():
        try:
            parsed = json.loads(data)
        except ValueError:
            raise ConnectorError(f"signal {ident!r}: data is not JSON: {data[:200]!r}") from None
        collections = parsed.get("data-collections") if isinstance(parsed, dict) else None
        if collections is not None:
            if not isinstance(collections, list) or not all(
                isinstance(c, str) for c in collections
            ):
                raise ConnectorError(
                    f"signal {ident!r}: data-collections must be a list of table names"
                )
            tables = list(collections)
        kind_of_snapshot = parsed.get("type", "incremental") if isinstance(parsed, dict) else None
        if kind == EXECUTE and str(kind_of_snapshot).lower() != "incremental":
            raise ConnectorError(
                f"signal {ident!r}: only incremental snapshots can be asked for "
                f"(type {kind_of_snapshot!r})"
            )
    if kind == EXECUTE and not tables:
        raise ConnectorError(
            f'signal {ident!r}: execute-snapshot needs data {{"data-collections": '
            '["schema.table", ...]}'
        )
    return Signal(ident, kind, tables)


def signal_table_statement(schema: str, name: str, quote: Any) -> str:
    """The statement that creates the signal table (Debezium's layout)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {quote(schema)}.{quote(name)} "
        "(id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data text)"
    )


__all__ = [
    "EXECUTE",
    "HIGH",
    "LOW",
    "SIGNAL_COLUMNS",
    "STOP",
    "Progress",
    "Signal",
    "Window",
    "new_token",
    "parse_signal",
    "signal_table_statement",
]
