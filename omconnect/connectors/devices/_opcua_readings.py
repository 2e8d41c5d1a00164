"""OPC-UA data changes as rows of one wide schema, built column by column.

One row per data-change notification, whatever the node's type, in the manner of Sparkplug B
metrics: the value goes into the one ``value_*`` column its OPC-UA built-in type fits and
``data_type`` says which type it was. One schema for every node keeps a topic's schema stable
when nodes are added (one schema per type would make the registry refuse the second type).

===========================================================  ===================
OPC-UA built-in type                                         column
===========================================================  ===================
Boolean                                                      ``value_boolean``
SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64     ``value_int``
Float, Double                                                ``value_double``
String                                                       ``value_string``
DateTime                                                     ``value_timestamp``
ByteString                                                   ``value_bytes``
===========================================================  ===================

A UInt64 above 2^63 - 1, every other type (LocalizedText, Guid, NodeId, QualifiedName,
StatusCode, XmlElement, ExtensionObject) and arrays are kept as text in ``value_string``
(arrays as a JSON array), with one warning per node and type. A null value leaves every
``value_*`` column null (``data_type`` ``Null``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from omconnect.connectors.api import Position, PositionMark, RecordBatch
from omconnect.connectors.devices._readings import readings_batch
from omconnect.schemas import types as t
from omconnect.schemas.arrow import to_arrow_schema
from omconnect.schemas.message_ids import PREFIX_WIDTH, MessageIdRuns
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

READING_SCHEMA = Schema(
    name="opcua_reading",
    fields=(
        Field("node_id", t.string(), nullable=False, doc="The node id, as `ns=2;s=Line1.Temp`."),
        Field("name", t.string(), nullable=False, doc="The node's `name` option or browse name."),
        Field("data_type", t.string(), nullable=False, doc="The value's OPC-UA built-in type."),
        Field("value_boolean", t.boolean()),
        Field("value_int", t.int64()),
        Field("value_double", t.float64()),
        Field("value_string", t.string()),
        Field("value_timestamp", t.timestamp("UTC")),
        Field("value_bytes", t.binary()),
        Field("source_timestamp", t.timestamp("UTC"), doc="When the device sampled the value."),
        Field("server_timestamp", t.timestamp("UTC"), doc="When the server last saw it."),
        Field("status_code", t.int64(), nullable=False, doc="The OPC-UA StatusCode (0: Good)."),
        Field("status", t.string(), nullable=False, doc="The StatusCode's name."),
    ),
    key_fields=("node_id",),
)
ARROW_SCHEMA = to_arrow_schema(READING_SCHEMA)

_INTEGERS = frozenset({"SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"})
_COLUMN_OF = {
    "Boolean": "value_boolean",
    **dict.fromkeys(_INTEGERS, "value_int"),
    "Float": "value_double",
    "Double": "value_double",
    "String": "value_string",
    "DateTime": "value_timestamp",
    "ByteString": "value_bytes",
}
_VALUE_COLUMNS = tuple(dict.fromkeys(_COLUMN_OF.values()))
_INT64_MAX = 2**63 - 1
# OPC-UA's "no time" (its epoch, 1601-01-01) and what asyncua makes of an absent timestamp.
_NO_TIME = dt.datetime(1601, 1, 2, tzinfo=dt.UTC)

log = logging.getLogger("omconnect.opcua")


@dataclass(frozen=True, slots=True)
class WatchedNode:
    """A subscribed node: its id as text and the name its rows carry."""

    node_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Reading:
    """One data-change notification of ``node`` (an index into the watched nodes): the
    value's built-in type name, the value, its status and timestamps, and when it arrived
    (epoch seconds)."""

    node: int
    data_type: str
    is_array: bool
    value: Any
    status_code: int
    status: str
    source_timestamp: dt.datetime | None
    server_timestamp: dt.datetime | None
    received: float


class ReadingBatches:
    """Builds record batches of the readings from the server at ``url``; remembers which
    (node, type) it warned about.

    Each batch carries one mark, ``{"server": url}`` at ``{"received_us": ...}``, when its
    last reading arrived (strictly increasing): nothing to resume from, but ``omconnect
    offsets list`` shows when the source last delivered.
    """

    def __init__(self, url: str, nodes: Sequence[WatchedNode]) -> None:
        self.nodes = list(nodes)
        self._partition = {"server": url}
        self._last_received_us = 0
        self._warned: set[tuple[int, str]] = set()
        # Message ids: this run's own prefix and a count of the rows emitted.
        self._run = uuid.uuid4().hex[:PREFIX_WIDTH]
        self._emitted = 0

    def batch(self, readings: Sequence[Reading]) -> RecordBatch:
        """The rows of ``readings`` (at least one) in arrival order, their times the source
        timestamps (else the server's, else the arrival). Their message ids are this run's
        own (a prefix drawn at start and a count), never those of another run, even one that
        crashed before it committed anything."""
        columns: dict[str, list[Any]] = {name: [] for name in ARROW_SCHEMA.names}
        for reading in readings:
            node = self.nodes[reading.node]
            columns["node_id"].append(node.node_id)
            columns["name"].append(node.name)
            columns["data_type"].append(reading.data_type + ("[]" if reading.is_array else ""))
            held, value = self._value_cell(reading)
            for column in _VALUE_COLUMNS:
                columns[column].append(value if column == held else None)
            columns["source_timestamp"].append(_time_or_none(reading.source_timestamp))
            columns["server_timestamp"].append(_time_or_none(reading.server_timestamp))
            columns["status_code"].append(reading.status_code)
            columns["status"].append(reading.status)
        table = pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)
        first, self._emitted = self._emitted, self._emitted + len(readings)
        received_us = max(self._last_received_us + 1, int(readings[-1].received * 1e6))
        self._last_received_us = received_us
        mark = PositionMark(len(readings), Position(self._partition, {"received_us": received_us}))
        return readings_batch(
            table,
            np.array([_event_millis(r) for r in readings], dtype=np.int64),
            schema_name=READING_SCHEMA.name,
            time_field=None,
            key=READING_SCHEMA.key_fields,
            marks=(mark,),
            message_ids=MessageIdRuns.derived([self._run], [first], [len(readings)]),
        )

    def _value_cell(self, reading: Reading) -> tuple[str | None, Any]:
        """The column that holds the reading's value, and the value as that column holds it."""
        value = reading.value
        if value is None:
            return None, None
        column = None if reading.is_array else _COLUMN_OF.get(reading.data_type)
        if column == "value_int" and value > _INT64_MAX:
            column = None
        if column is not None:
            return column, value
        key = (reading.node, reading.data_type)
        if key not in self._warned:
            self._warned.add(key)
            what = f"{reading.data_type} array" if reading.is_array else reading.data_type
            log.warning(
                "node %s: OPC-UA %s values have no column of their own; they are kept as "
                "text in value_string",
                self.nodes[reading.node].node_id,
                what,
            )
        return "value_string", _text(value)


def _text(value: Any) -> str:
    """A value's text: LocalizedText its text, NodeId and QualifiedName their string form
    (``ns=2;i=3``, ``2:Temp``), StatusCode its name, bytes in hex, arrays a JSON array of
    the numbers or texts of their items."""
    if isinstance(value, list):
        return json.dumps([_json_item(item) for item in value])
    if hasattr(value, "Text") and hasattr(value, "Locale"):  # LocalizedText
        return str(value.Text)
    if hasattr(value, "to_string"):  # NodeId, ExpandedNodeId, QualifiedName
        return str(value.to_string())
    if hasattr(value, "is_good"):  # StatusCode
        return str(value.name)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _json_item(item: Any) -> Any:
    if isinstance(item, bool | int | float | str) or item is None:
        return item
    return _text(item)


def _time_or_none(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return None if aware < _NO_TIME else aware


def _event_millis(reading: Reading) -> int:
    for stamp in (reading.source_timestamp, reading.server_timestamp):
        known = _time_or_none(stamp)
        if known is not None:
            return int(known.timestamp() * 1000)
    return int(reading.received * 1000)
