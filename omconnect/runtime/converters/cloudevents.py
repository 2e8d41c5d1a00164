"""The ``cloudevents`` converter: every record a CloudEvent (specification 1.0).

The event data is the record as the ``json`` converter writes it (the same bytes: this
converter wraps one, so values, keys, registered schemas and decoding are the ``json``
format's), ``datacontenttype: application/json``. The attributes:

- ``specversion``: ``1.0``;
- ``id``: the record's message id (the stable id the runtime derives from source positions,
  or the source's own, see ``runtime/worker/message_ids.py``; the broker's ``oms.message_id``);
- ``source``: ``omconnect://<pipeline>/<stream>``, the pipeline and the source stream it read
  the record from (the stream percent-encoded; ``omconnect://<pipeline>`` for a source of one
  stream);
- ``type``: the pipeline's ``cloudevents_type``, default ``omconnect.record``;
- ``time``: the record's timestamp (RFC 3339, UTC, milliseconds), when it has one;
- ``subject``: the record's key (the JSON object of its key fields), when it has one;
- ``dataschema``: ``<registry>/schemas/ids/<id>`` with an external schema registry
  (``schema_registry: URL``), the schema the record was registered with; none with the
  embedded one, which has no URL of its own.

Binary mode (``cloudevents_mode: binary``, the default): the body is the data and the
attributes are message headers, named by the broker's protocol binding, ``datacontenttype``
first (the drivers of MQTT and AMQP carry a first ``content-type`` header as their content
type property):

========================  ======================  ===========================  ==============
broker                    attribute ``id`` as     ``datacontenttype`` as       values
========================  ======================  ===========================  ==============
``kafka://``              ``ce_id``               ``content-type``             UTF-8
``amqp://``               ``cloudEvents_id``      ``content-type`` (property)  UTF-8
``mqtt://`` (MQTT 5)      ``id`` (user property)  ``content-type`` (property)  UTF-8
``nats://``               ``ce-id``               ``ce-datacontenttype``       percent-encoded
``redis://``, embedded    ``ce-id`` (HTTP's)      ``content-type``             percent-encoded
========================  ======================  ===========================  ==============

Redis streams and the embedded log have no binding of their own; they take HTTP's, as the
headers of other log brokers do. Percent-encoding (NATS, HTTP) replaces space, ``"``, ``%``
and every character outside printable ASCII by its UTF-8 bytes as ``%XX``.

Structured mode (``cloudevents_mode: structured``): the body is the whole event in the JSON
event format, ``{"specversion":"1.0","id":...,"datacontenttype":"application/json",...,
"data":{...the record...}}`` (``data`` last), and the only header is ``content-type:
application/cloudevents+json``, under that name on every broker.

Deletes: a delete (a row of ``RecordBatch.tombstones``) has a null body and its key, as with
``json``; in binary mode it keeps its attribute headers (the Kafka binding's tombstone: an
event without data), in structured mode it has no header.

Decoding reads events of either mode back into records, a message at a time as its headers
say: a ``content-type`` starting with ``application/cloudevents`` is a structured event (as is
a body that starts with ``{"specversion"`` on a message with no content type at all, as an
MQTT 3 client sends one); anything else is binary, its body the data. Data must be JSON (a
``datacontenttype`` of ``application/json``, ``text/json`` or ``*+json``); other data fails
its message with the reason. The ``data`` member of structured events is cut out of the
bodies with numpy when it is their last member (as omconnect and the SDKs write it), else read
with ``json`` a body at a time; ``data_base64`` holds JSON text. Attributes are not read back:
a record's key, timestamp and id are its message's, and the attribute headers stay in the
record's headers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omconnect.codecs.json_text import json_texts, text_offsets
from omconnect.runtime.converters.base import (
    Converter,
    Decoded,
    DecodedGroup,
    Encoded,
    map_extents,
)
from omconnect.runtime.converters.json import JsonConverter
from omconnect.runtime.converters.tombstones import null_mask
from omconnect.runtime.state.schema_registry import HttpSchemaRegistry, SchemaRegistry
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.message_ids import MessageIdRuns
from omconnect.schemas.record import RecordBatch

SPECVERSION = "1.0"
DEFAULT_TYPE = "omconnect.record"
DATA_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CONTENT_TYPE = "content-type"
SOURCE_SCHEME = "omconnect"
MODES = ("binary", "structured")

# A datacontenttype whose data is JSON text (RFC 6839 ``+json`` suffixes included).
_JSON_TYPE = r"^\s*(application|text)/([a-z0-9!#$&^_.+-]*\+)?json\s*(;.*)?$"
_STRUCTURED_TYPE = "application/cloudevents"
# How a body written without a content type shows it is a structured event.
_STRUCTURED_START = b'{"specversion"'
# The ``data`` member as omconnect (compact) and json.dumps (default separators) write it.
_DATA_MEMBERS = (b',"data":', b', "data": ')
# Timestamps RFC 3339 can write (years 0001 to 9999), in epoch milliseconds.
_FIRST_MS = -62_135_596_800_000
_LAST_MS = 253_402_300_799_999


@dataclass(frozen=True)
class Binding:
    """How a protocol binding names attributes in binary mode.

    Attributes:
        name: the binding (``kafka``, ``amqp``, ``mqtt``, ``nats``, ``http``).
        prefix: put before an attribute's name to make its header's.
        content_type_header: the header ``datacontenttype`` travels in.
        percent_encoded: whether header values are percent-encoded (HTTP's rule).
    """

    name: str
    prefix: str
    content_type_header: str
    percent_encoded: bool

    def header(self, attribute: str) -> str:
        """The header that carries ``attribute``."""
        if attribute == "datacontenttype":
            return self.content_type_header
        return self.prefix + attribute


BINDINGS: dict[str, Binding] = {
    "kafka": Binding("kafka", "ce_", CONTENT_TYPE, percent_encoded=False),
    "amqp": Binding("amqp", "cloudEvents_", CONTENT_TYPE, percent_encoded=False),
    "mqtt": Binding("mqtt", "", CONTENT_TYPE, percent_encoded=False),
    "nats": Binding("nats", "ce-", "ce-datacontenttype", percent_encoded=True),
    "http": Binding("http", "ce-", CONTENT_TYPE, percent_encoded=True),
}
"""The protocol bindings, by name."""

BROKER_BINDINGS: dict[str, str] = {
    "kafka": "kafka",
    "amqp": "amqp",
    "mqtt": "mqtt",
    "nats": "nats",
    "redis": "http",
    "embedded": "http",
}
"""The binding of each broker URL scheme; a scheme not listed takes ``http``."""


def binding_for(name: str | None) -> Binding:
    """The binding named ``name``, or of the broker URL scheme ``name`` (``kafka``,
    ``redis``, ...); HTTP's for anything else, and for None."""
    if name is not None and name in BINDINGS:
        return BINDINGS[name]
    return BINDINGS[BROKER_BINDINGS.get(name or "", "http")]


# One attribute of every event of a batch: the same text for every row, or a text per row
# (null where the row has no such attribute).
_Attribute = tuple[str, str | pa.StringArray]


class CloudEventsConverter(Converter):
    """Records as CloudEvents with JSON data, in binary or structured mode (see the module
    docstring).

    Args:
        registry: the pipeline's schema registry, as for the ``json`` converter.
        pipeline: the pipeline's name, in every event's ``source``.
        binding: a binding or broker URL scheme (``binding_for``): how binary mode names
            attribute headers.
        mode: ``binary`` or ``structured``.
        event_type: every event's ``type``.

    Raises:
        ValueError: an unknown ``mode``, or an empty ``event_type``.
    """

    name = "cloudevents"

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        pipeline: str = "omconnect",
        binding: str | None = None,
        mode: str = "binary",
        event_type: str = DEFAULT_TYPE,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"cloudevents mode {mode!r}: expected one of {MODES}")
        if not event_type:
            raise ValueError("a cloudevents type cannot be empty")
        self._json = JsonConverter(registry)
        self.pipeline = pipeline
        self.binding = binding_for(binding)
        self.mode = mode
        self.event_type = event_type
        self.content_type = STRUCTURED_CONTENT_TYPE if mode == "structured" else DATA_CONTENT_TYPE
        self._schemas_url = (
            f"{registry.url}/schemas/ids/" if isinstance(registry, HttpSchemaRegistry) else None
        )

    def source(self, stream: str | None) -> str:
        """The ``source`` of the events of ``stream``'s records."""
        base = f"{SOURCE_SCHEME}://{self.pipeline}"
        return base if stream is None else f"{base}/{quote(stream, safe='')}"

    def encode(self, topic: str, batch: RecordBatch) -> Encoded:
        encoded = self._json.encode(topic, batch)
        attributes = self._attributes(topic, batch, encoded.keys)
        if self.mode == "binary":
            # The content type first: the MQTT and AMQP drivers look for it there.
            attributes.sort(key=lambda attribute: attribute[0] != "datacontenttype")
            headers = _attribute_headers(attributes, self.binding, batch.num_rows)
            return Encoded(encoded.values, encoded.keys, encoded.failed, headers)
        values = _structured_events(attributes, encoded.values)
        has_body = np.asarray(values.is_valid())
        headers = _attribute_headers(
            [(CONTENT_TYPE, STRUCTURED_CONTENT_TYPE)], None, batch.num_rows, has_body
        )
        return Encoded(values, encoded.keys, encoded.failed, headers)

    def decode(self, topic: str, values: pa.BinaryArray, keys: pa.BinaryArray | None) -> Decoded:
        return self.decode_with_headers(topic, values, keys, None)

    def decode_with_headers(
        self,
        topic: str,
        values: pa.BinaryArray,
        keys: pa.BinaryArray | None,
        headers: pa.MapArray | None,
    ) -> Decoded:
        n = len(values)
        values = values.cast(pa.binary())
        has_body = ~null_mask(values, n)
        content_type = _first_header(headers, CONTENT_TYPE, n)
        data_type = content_type
        if self.binding.content_type_header != CONTENT_TYPE:
            data_type = _first_header(headers, self.binding.content_type_header, n)
        structured = _mask(pc.starts_with(content_type, _STRUCTURED_TYPE, ignore_case=True))
        unlabelled = ~_mask(content_type.is_valid()) & ~_mask(data_type.is_valid())
        if unlabelled.any():
            sniffed = _mask(pc.starts_with(values, pattern=_STRUCTURED_START))
            structured |= unlabelled & sniffed
        failed: dict[int, Exception] = {}
        not_json = ~structured & _mask(data_type.is_valid())
        not_json &= ~_mask(pc.match_substring_regex(data_type, _JSON_TYPE, ignore_case=True))
        for row in np.flatnonzero(not_json).tolist():
            failed[row] = _not_json_error(data_type[row].as_py())
        # Rows whose data is read from the whole event, one at a time.
        slow = np.zeros(n, dtype=np.bool_)
        data = values
        events = np.flatnonzero(structured & has_body)
        if len(events):
            members, found = _last_data_members(values.take(pa.array(events)))
            slow[events[~found]] = True
            data = _replaced(values, events[found], members.filter(pa.array(found)))
        data, slow_failed = _with_event_data(data, values, np.flatnonzero(slow))
        failed.update(slow_failed)
        decoded = self._decoded_rows(topic, data, keys, _rows_without(n, failed))
        # Data cut out by numpy that JSON refused: perhaps not the last member after all.
        retry = [
            row
            for row in decoded.failed
            if structured[row] and has_body[row] and not slow[row] and row not in failed
        ]
        if retry:
            rows = np.array(retry, dtype=np.int64)
            data, slow_failed = _with_event_data(data, values, rows)
            again = self._decoded_rows(topic, data, keys, np.setdiff1d(rows, list(slow_failed)))
            groups = sorted([*decoded.groups, *again.groups], key=lambda g: int(g.rows[0].as_py()))
            others = {row: e for row, e in decoded.failed.items() if row not in set(retry)}
            decoded = Decoded(groups, {**others, **again.failed, **slow_failed})
        failed.update(decoded.failed)
        return Decoded(decoded.groups, dict(sorted(failed.items())))

    def decoded_form(self, topic: str, batch: RecordBatch) -> DecodedGroup | None:
        # Decoding gives what the json converter's decoding of the data gives.
        return self._json.decoded_form(topic, batch)

    def _attributes(
        self, topic: str, batch: RecordBatch, keys: pa.BinaryArray | None
    ) -> list[_Attribute]:
        """The attributes of the events of ``batch``."""
        attributes: list[_Attribute] = [
            ("specversion", SPECVERSION),
            ("id", _event_ids(batch)),
            ("source", self.source(batch.stream)),
            ("type", self.event_type),
            ("datacontenttype", DATA_CONTENT_TYPE),
        ]
        if batch.timestamps is not None:
            attributes.append(("time", _rfc3339(batch.timestamps)))
        if keys is not None:
            attributes.append(("subject", keys.cast(pa.string())))
        if self._schemas_url is not None:
            schema_id = self._json.registered_id(topic, batch.schema)
            if schema_id is not None:
                attributes.append(("dataschema", f"{self._schemas_url}{schema_id}"))
        return attributes

    def _decoded_rows(
        self, topic: str, data: pa.BinaryArray, keys: pa.BinaryArray | None, rows: np.ndarray
    ) -> Decoded:
        """The json converter's decoding of the data of message ``rows``, numbered as
        messages."""
        if not len(rows):
            return Decoded(groups=[])
        if len(rows) == len(data):
            return self._json.decode(topic, data, keys)
        taken = pa.array(rows)
        part = self._json.decode(topic, data.take(taken), keys.take(taken) if keys else None)
        groups = [
            dataclasses.replace(g, rows=pa.array(rows[g.rows.to_numpy()], pa.int64()))
            for g in part.groups
        ]
        return Decoded(groups, {int(rows[r]): e for r, e in part.failed.items()})


def _event_ids(batch: RecordBatch) -> pa.StringArray:
    """The message ids of ``batch``'s rows; a row without one (a batch the runtime gave no
    ids, outside a pipeline) gets one of a random run."""
    ids = batch.message_ids
    n = batch.num_rows
    if ids is not None and not ids.null_count and not pc.any(pc.equal(ids, "")).as_py():
        return ids
    made = MessageIdRuns.derived([secrets.token_hex(8)], [0], [n]).to_array()
    if ids is None:
        return made
    usable = pc.and_kleene(ids.is_valid(), pc.not_equal(ids, ""))
    return pc.if_else(pc.fill_null(usable, False), ids, made)


def _rfc3339(timestamps: pa.Array) -> pa.StringArray:
    """Epoch milliseconds as RFC 3339 UTC texts (``2024-01-31T12:30:00.123Z``); null for
    nulls and for times before year 1 or after 9999."""
    ms = timestamps.cast(pa.int64())
    writable = pc.and_(pc.greater_equal(ms, _FIRST_MS), pc.less_equal(ms, _LAST_MS))
    ms = pc.if_else(writable, ms, pa.scalar(None, pa.int64()))
    # As naive times: Arrow writes zoned ones (and strftime) an order of magnitude slower.
    text = ms.cast(pa.timestamp("ms")).cast(pa.string())
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "")


def _attribute_headers(
    attributes: list[_Attribute],
    binding: Binding | None,
    n: int,
    rows: np.ndarray | None = None,
) -> pa.MapArray:
    """A header per attribute on each row (named by ``binding``, or as the attribute when
    None), gathered with numpy; only ``rows`` (a mask) have headers when given, the others
    are null."""
    pieces: list[pa.Array] = []
    names: list[str] = []
    indices = np.empty((n, len(attributes)), dtype=np.int64)
    present = np.ones((n, len(attributes)), dtype=np.bool_)
    base = 0
    for j, (attribute, value) in enumerate(attributes):
        names.append(binding.header(attribute) if binding is not None else attribute)
        encode = binding is not None and binding.percent_encoded
        if isinstance(value, str):
            pieces.append(pa.array([_percent_encoded(value) if encode else value], pa.string()))
            indices[:, j] = base
            base += 1
            continue
        text = _percent_encoded_column(value) if encode else value
        pieces.append(text.cast(pa.string()))
        indices[:, j] = base + np.arange(n, dtype=np.int64)
        present[:, j] = _mask(text.is_valid())
        base += n
    if rows is not None:
        present &= rows[:, None]
    counts = present.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    attribute_of = np.broadcast_to(np.arange(len(attributes)), present.shape)[present]
    items = pa.concat_arrays(pieces).cast(pa.binary()).take(pa.array(indices[present]))
    keys = pa.array(names, pa.string()).take(pa.array(attribute_of))
    mask = pa.array(~rows) if rows is not None and not rows.all() else None
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=HEADERS_TYPE, mask=mask)


def _structured_events(attributes: list[_Attribute], data: pa.BinaryArray) -> pa.BinaryArray:
    """The JSON event of each row: its attributes then ``data`` (null where ``data`` is)."""
    pieces: list[pa.Array | pa.Scalar] = []
    text = "{"
    for attribute, value in attributes:
        if isinstance(value, str):
            text += f"{json.dumps(attribute)}:{json.dumps(value, ensure_ascii=False)},"
            continue
        pieces.append(pa.scalar(text.encode(), pa.binary()))
        texts = pc.if_else(value.is_valid(), json_texts(value), pa.scalar(None, pa.string()))
        # Null where the row has no such attribute: the member is left out.
        name = f'"{attribute}":'.encode()
        pieces.append(pc.binary_join_element_wise(name, texts.cast(pa.binary()), b",", b""))
        text = ""
    pieces.append(pa.scalar(f'{text}"data":'.encode(), pa.binary()))
    pieces.append(data.cast(pa.binary()))
    pieces.append(pa.scalar(b"}", pa.binary()))
    events = pc.binary_join_element_wise(
        *pieces, b"", null_handling="replace", null_replacement=b""
    )
    return pc.if_else(data.is_valid(), events, pa.scalar(None, pa.binary()))


def _percent_encoded(text: str) -> str:
    """``text`` with space, ``"``, ``%`` and everything outside printable ASCII as the
    ``%XX`` of its UTF-8 bytes (the HTTP and NATS bindings' rule)."""
    out = []
    for char in text:
        if "!" <= char <= "~" and char not in '"%':
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode())
    return "".join(out)


def _percent_encoded_column(text: pa.StringArray) -> pa.StringArray:
    """``_percent_encoded`` of each value: Arrow kernels for space, ``"`` and ``%``; the
    rare values with other characters to encode one by one."""
    text = text.cast(pa.string())
    # Anything but printable ASCII other than ``"`` and ``%``.
    if not pc.any(pc.match_substring_regex(text, r"[^!#$&-~]")).as_py():
        return text
    out = pc.replace_substring(text, "%", "%25")
    out = pc.replace_substring(out, '"', "%22")
    out = pc.replace_substring(out, " ", "%20")
    odd = pc.fill_null(pc.match_substring_regex(out, r"[^\x21-\x7e]"), False)
    if not pc.any(odd).as_py():
        return out
    rows = pa.array(np.flatnonzero(_mask(odd)))
    fixed = [_percent_encoded(value) for value in text.take(rows).to_pylist()]
    return pc.replace_with_mask(out, odd, pa.array(fixed, pa.string()))


def _first_header(headers: pa.MapArray | None, name: str, n: int) -> pa.BinaryArray:
    """The value of each row's first header named ``name`` (in any case), null where the
    row has none."""
    if headers is None or not len(headers.keys):
        return pa.nulls(n, pa.binary())
    counts, starts = map_extents(headers)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    firsts = np.cumsum(counts) - counts
    entries = starts[owner] + np.arange(total, dtype=np.int64) - firsts[owner]
    names = pc.utf8_lower(headers.keys.cast(pa.string()).take(pa.array(entries)))
    matched = np.flatnonzero(_mask(pc.equal(names, name)))
    rows, first = np.unique(owner[matched], return_index=True)
    chosen = np.full(n, -1, dtype=np.int64)
    chosen[rows] = entries[matched[first]]
    picked = pa.array(chosen, mask=chosen < 0)
    return headers.items.cast(pa.binary()).take(picked)


def _last_data_members(events: pa.BinaryArray) -> tuple[pa.BinaryArray, np.ndarray]:
    """The text of the ``data`` member of JSON events (none null), found where it is the
    last member, and a mask of the events it was found in (empty text elsewhere).

    In a CloudEvent only ``data`` has an object or array value, and ``,"data":`` cannot be
    inside a JSON string (its quote would be escaped), so the first one is ``data``'s own
    unless ``data`` comes earlier; then the text cut out is not one JSON value, and JSON
    refuses it (the caller reads those events again a whole event at a time)."""
    m = len(events)
    offsets = text_offsets(events).astype(np.int64)
    buffer = events.buffers()[2]
    data = np.frombuffer(buffer, np.uint8) if buffer is not None else np.zeros(0, np.uint8)
    begin = _data_starts(data, offsets)
    ends = offsets[1:] - 1  # the closing brace
    closed = np.zeros(m, dtype=np.bool_)
    non_empty = offsets[1:] > offsets[:-1]
    closed[non_empty] = data[ends[non_empty]] == ord("}")
    found = (begin >= 0) & closed
    lengths = np.where(found, ends - begin, 0)
    out = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    picks = np.repeat(begin - out[:-1], lengths) + np.arange(int(out[-1]), dtype=np.int64)
    members = pa.Array.from_buffers(
        pa.binary(),
        m,
        [None, pa.py_buffer(out.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(data[picks]))],
    )
    return members, found


def _data_starts(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Where the value of the first ``data`` member of each event (its bytes at ``offsets``
    into ``data``) begins, or -1: the patterns are matched a byte at a time over the
    candidates with numpy (a few times faster than Arrow's substring search)."""
    low, high = int(offsets[0]), int(offsets[-1])
    commas = np.flatnonzero(data[low:high] == ord(",")) + low
    positions, value_starts = [], []
    for pattern in _DATA_MEMBERS:
        found = commas[commas + len(pattern) <= high]
        for k in range(1, len(pattern)):
            found = found[data[found + k] == pattern[k]]
        positions.append(found)
        value_starts.append(found + len(pattern))
    at = np.concatenate(positions)
    value_at = np.concatenate(value_starts)
    order = np.argsort(at, kind="stable")
    at, value_at = at[order], value_at[order]
    rows = np.searchsorted(offsets, at, side="right") - 1
    inside = value_at <= offsets[rows + 1]
    rows, value_at = rows[inside], value_at[inside]
    starts = np.full(len(offsets) - 1, -1, dtype=np.int64)
    first_rows, first = np.unique(rows, return_index=True)
    starts[first_rows] = value_at[first]
    return starts


def _with_event_data(
    data: pa.BinaryArray, events: pa.BinaryArray, rows: np.ndarray
) -> tuple[pa.BinaryArray, dict[int, Exception]]:
    """``data`` with the data of the structured events at ``rows`` of ``events`` read a
    whole event at a time, and the rows whose event is not one omconnect reads."""
    if not len(rows):
        return data, {}
    read: list[bytes | None] = []
    failed: dict[int, Exception] = {}
    for row, event in zip(rows.tolist(), events.take(pa.array(rows)).to_pylist(), strict=True):
        try:
            read.append(_event_data(event))
        except (ValueError, TypeError) as error:  # JSONDecodeError, binascii.Error too
            failed[row] = error
            read.append(None)
    return _replaced(data, rows, pa.array(read, pa.binary())), failed


def _event_data(event: bytes) -> bytes | None:
    """The data (JSON text) of one structured event; None when it has none.

    Raises:
        ValueError: the body is not a CloudEvents 1.0 JSON event with JSON data.
    """
    try:
        parsed = json.loads(event)
    except ValueError as error:
        raise ValueError(f"a structured CloudEvent that is not JSON: {error}") from None
    if not isinstance(parsed, dict) or "specversion" not in parsed:
        raise ValueError("a structured CloudEvent is a JSON object with a specversion")
    if parsed["specversion"] != SPECVERSION:
        raise ValueError(f"CloudEvents specversion {parsed['specversion']!r}: expected 1.0")
    data_type = parsed.get("datacontenttype")
    if data_type is not None and not re.match(_JSON_TYPE, str(data_type), re.IGNORECASE):
        raise _not_json_error(str(data_type).encode())
    if parsed.get("data") is not None:
        return json.dumps(parsed["data"], ensure_ascii=False, separators=(",", ":")).encode()
    if parsed.get("data_base64") is not None:
        return base64.b64decode(parsed["data_base64"], validate=True)
    return None


def _not_json_error(data_type: bytes | None) -> ValueError:
    shown = (data_type or b"").decode(errors="replace")
    return ValueError(
        f"CloudEvent data of type {shown!r}: the cloudevents format reads JSON data "
        "(application/json)"
    )


def _replaced(column: pa.BinaryArray, rows: np.ndarray, values: pa.Array) -> pa.BinaryArray:
    """``column`` with ``values`` at ``rows`` (ascending)."""
    if not len(rows):
        return column
    where = np.zeros(len(column), dtype=np.bool_)
    where[rows] = True
    return pc.replace_with_mask(column, pa.array(where), values.cast(pa.binary()))


def _rows_without(count: int, failed: dict[int, Any]) -> np.ndarray:
    rows = np.arange(count, dtype=np.int64)
    return np.setdiff1d(rows, list(failed)) if failed else rows


def _mask(values: pa.Array) -> np.ndarray:
    """A boolean array as a numpy mask, nulls false."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=np.bool_)
