"""The cloudevents converter: the attribute headers each protocol binding names, binary and
structured events that the CloudEvents SDK (the ``cloudevents`` package) reads, and records
read back from both modes, from events other producers wrote, and without losing a type."""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from cloudevents.core.bindings import amqp, http, kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from omconnect.runtime.config.model import PipelineConfig
from omconnect.runtime.converters import make_converter
from omconnect.runtime.converters.base import Encoded, merged_headers
from omconnect.runtime.converters.cloudevents import (
    BINDINGS,
    CloudEventsConverter,
    binding_for,
)
from omconnect.runtime.converters.refused_schemas import RefusedSchemaRows
from omconnect.runtime.state.schema_registry import HttpSchemaRegistry, SqliteSchemaRegistry
from omconnect.schemas import types as t
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

IDS = ["a1b2c3d4e5f60718-00000000", "a1b2c3d4e5f60718-00000001", "a1b2c3d4e5f60718-00000002"]
TIMES = [1_706_704_200_123, None, 0]


def orders(deletes: list[bool] | None = None, stream: str | None = "public.orders") -> RecordBatch:
    """Three orders keyed by ``id``; the second has an awkward name and no timestamp."""
    values = pa.record_batch({"id": [1, 2, 3], "name": ["plain", 'a "quoted" ü name', None]})
    return RecordBatch(
        values,
        from_arrow_schema(values.schema, name="orders", key_fields=("id",)),
        timestamps=pa.array(TIMES, pa.int64()),
        stream=stream,
        message_ids=pa.array(IDS),
        tombstones=pa.array(deletes) if deletes is not None else None,
    )


def converter(binding: str = "kafka", mode: str = "binary", **options: Any) -> CloudEventsConverter:
    return CloudEventsConverter(pipeline="shop", binding=binding, mode=mode, **options)


def row_headers(encoded: Encoded, row: int) -> list[tuple[str, bytes]]:
    assert encoded.headers is not None
    return list(encoded.headers[row].as_py() or [])


def decoded_rows(conv: CloudEventsConverter, encoded: Encoded) -> list[dict[str, Any]]:
    decoded = conv.decode_with_headers("orders", encoded.values, encoded.keys, encoded.headers)
    assert decoded.failed == {}
    rows: list[dict[str, Any]] = []
    for group in decoded.groups:
        rows.extend(group.values.to_pylist())
    return rows


# -- binary mode: the headers of each binding ---------------------------------------------

EXPECTED_NAMES = {
    "kafka": ["content-type", "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"],
    "amqp": [
        "content-type",
        "cloudEvents_specversion",
        "cloudEvents_id",
        "cloudEvents_source",
        "cloudEvents_type",
        "cloudEvents_time",
    ],
    "mqtt": ["content-type", "specversion", "id", "source", "type", "time"],
    "nats": ["ce-datacontenttype", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"],
    "http": ["content-type", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"],
}


@pytest.mark.parametrize("binding", sorted(EXPECTED_NAMES))
def test_binary_mode_names_the_attributes_as_the_binding_does(binding: str) -> None:
    encoded = converter(binding).encode("orders", orders())
    subject = EXPECTED_NAMES[binding][-1].replace("time", "subject")
    first = row_headers(encoded, 0)
    assert [name for name, _ in first] == [*EXPECTED_NAMES[binding], subject]
    assert first[0][1] == b"application/json"
    # A record without a timestamp has no time attribute.
    assert "time" not in " ".join(name for name, _ in row_headers(encoded, 1))
    # The body is the json format's, untouched.
    assert json.loads(encoded.values[0].as_py()) == {"id": 1, "name": "plain"}


@pytest.mark.parametrize(
    ("scheme", "binding"),
    [
        ("kafka", "kafka"),
        ("amqp", "amqp"),
        ("mqtt", "mqtt"),
        ("nats", "nats"),
        ("redis", "http"),
        ("embedded", "http"),
        ("unknown", "http"),
        (None, "http"),
    ],
)
def test_each_broker_scheme_has_its_binding(scheme: str | None, binding: str) -> None:
    assert binding_for(scheme) is BINDINGS[binding]
    made = make_converter("cloudevents", None, pipeline="p", broker_scheme=scheme)
    assert isinstance(made, CloudEventsConverter) and made.binding is BINDINGS[binding]


def test_attributes_carry_id_source_type_time_and_subject() -> None:
    headers = dict(row_headers(converter("kafka").encode("orders", orders()), 0))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == IDS[0].encode()
    assert headers["ce_source"] == b"omconnect://shop/public.orders"
    assert headers["ce_type"] == b"omconnect.record"
    assert headers["ce_time"] == b"2024-01-31T12:30:00.123Z"
    assert headers["ce_subject"] == b'{"id":1}'
    assert "ce_dataschema" not in headers, "the embedded registry has no URL to name"


def test_source_names_the_pipeline_and_the_stream_percent_encoded() -> None:
    conv = converter()
    assert conv.source(None) == "omconnect://shop"
    assert conv.source("public.orders") == "omconnect://shop/public.orders"
    assert conv.source("a b/c") == "omconnect://shop/a%20b%2Fc"
    one_stream = dict(row_headers(conv.encode("orders", orders(stream=None)), 0))
    assert one_stream["ce_source"] == b"omconnect://shop"


def test_the_type_is_the_pipelines_cloudevents_type() -> None:
    conv = make_converter(
        "cloudevents", None, pipeline="p", broker_scheme="kafka", cloudevents_type="com.shop.order"
    )
    headers = dict(row_headers(conv.encode("orders", orders()), 0))
    assert headers["ce_type"] == b"com.shop.order"


def test_percent_encoding_bindings_encode_space_quote_percent_and_non_ascii() -> None:
    values = pa.record_batch({"k": ['50% "off" ü€😀', "plain-text"], "v": [1, 2]})
    batch = RecordBatch(values, from_arrow_schema(values.schema, name="t", key_fields=("k",)))
    for binding in ("nats", "http"):
        encoded = converter(binding).encode("t", batch)
        subject = dict(row_headers(encoded, 0))["ce-subject"]
        assert subject == rb"{%22k%22:%2250%25%20\%22off\%22%20%C3%BC%E2%82%AC%F0%9F%98%80%22}"
        assert dict(row_headers(encoded, 1))["ce-subject"] == b"{%22k%22:%22plain-text%22}"
    kafka_subject = dict(row_headers(converter("kafka").encode("t", batch), 0))["ce_subject"]
    assert kafka_subject.decode() == '{"k":"50% \\"off\\" ü€😀"}'


def test_a_batch_without_message_ids_gets_distinct_ids() -> None:
    values = pa.record_batch({"v": list(range(5))})
    batch = RecordBatch(values, from_arrow_schema(values.schema, name="t"))
    encoded = converter().encode("t", batch)
    ids = [dict(row_headers(encoded, row))["ce_id"] for row in range(5)]
    assert len(set(ids)) == 5 and all(ids)
    assert all("ce_subject" not in dict(row_headers(encoded, row)) for row in range(5))


# -- what the CloudEvents SDK reads ---------------------------------------------------------


def test_the_sdk_reads_binary_kafka_messages() -> None:
    batch = orders()
    encoded = converter("kafka").encode("orders", batch)
    for row in range(3):
        message = kafka.KafkaMessage(
            headers=dict(row_headers(encoded, row)),
            key=encoded.keys[row].as_py() if encoded.keys is not None else None,
            value=encoded.values[row].as_py(),
        )
        event = kafka.from_kafka(message, JSONFormat())
        assert event.get_id() == IDS[row]
        assert event.get_source() == "omconnect://shop/public.orders"
        assert event.get_type() == "omconnect.record"
        assert event.get_datacontenttype() == "application/json"
        assert event.get_subject() == json.dumps({"id": row + 1}, separators=(",", ":"))
        assert event.get_data() == batch.values.slice(row, 1).to_pylist()[0]
        stamp = TIMES[row]
        if stamp is not None:  # (the SDK gives an event without a time the time it read it)
            assert event.get_time() == datetime.datetime.fromtimestamp(stamp / 1000, datetime.UTC)
        assert ("ce_time" in message.headers) is (stamp is not None)


def test_the_sdk_reads_binary_http_like_messages_percent_decoded() -> None:
    encoded = converter("http").encode("orders", orders())
    headers = {name: raw.decode() for name, raw in row_headers(encoded, 1)}
    event = http.from_http(http.HTTPMessage(headers, encoded.values[1].as_py()), JSONFormat())
    assert event.get_subject() == '{"id":2}'
    assert event.get_data() == {"id": 2, "name": 'a "quoted" ü name'}
    assert event.get_id() == IDS[1]


def test_the_sdk_reads_binary_amqp_messages_as_the_driver_maps_them() -> None:
    """The amqp driver sends a ``content-type`` header as the message's content type and
    every other header as an entry of the headers table (AMQP 1.0's application
    properties, for RabbitMQ)."""
    encoded = converter("amqp").encode("orders", orders())
    entries = row_headers(encoded, 0)
    properties = {name: raw.decode() for name, raw in entries if name == "content-type"}
    application = {name: raw.decode() for name, raw in entries if name != "content-type"}
    message = amqp.AMQPMessage(properties, application, encoded.values[0].as_py())
    event = amqp.from_binary(message, JSONFormat())
    assert (event.get_id(), event.get_subject()) == (IDS[0], '{"id":1}')
    assert event.get_data() == {"id": 1, "name": "plain"}


def test_the_sdk_reads_structured_events() -> None:
    batch = orders()
    encoded = converter("kafka", "structured").encode("orders", batch)
    for row in range(3):
        assert row_headers(encoded, row) == [("content-type", b"application/cloudevents+json")]
        message = kafka.KafkaMessage(
            dict(row_headers(encoded, row)), None, encoded.values[row].as_py()
        )
        event = kafka.from_kafka(message, JSONFormat())
        assert event.get_id() == IDS[row]
        assert event.get_source() == "omconnect://shop/public.orders"
        assert event.get_data() == batch.values.slice(row, 1).to_pylist()[0]
        assert event.get_subject() == json.dumps({"id": row + 1}, separators=(",", ":"))
    first = json.loads(encoded.values[0].as_py())
    assert list(first)[:2] == ["specversion", "id"] and list(first)[-1] == "data"
    assert "time" not in json.loads(encoded.values[1].as_py())


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_deletes_are_null_bodies_with_their_key(mode: str) -> None:
    conv = converter("kafka", mode)
    encoded = conv.encode("orders", orders(deletes=[False, True, False]))
    assert encoded.values[1].as_py() is None
    assert encoded.keys is not None and encoded.keys[1].as_py() == b'{"id":2}'
    if mode == "binary":
        assert dict(row_headers(encoded, 1))["ce_id"] == IDS[1].encode()
    else:
        assert encoded.headers is not None and not encoded.headers[1].is_valid
    decoded = conv.decode_with_headers("orders", encoded.values, encoded.keys, encoded.headers)
    assert decoded.failed == {}
    (group,) = decoded.groups
    assert group.tombstones is not None and group.tombstones.to_pylist() == [False, True, False]
    assert group.keys is not None and group.keys.to_pylist()[1] == {"id": 2}


# -- reading events back -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("binding", sorted(BINDINGS))
def test_round_trip(binding: str, mode: str) -> None:
    conv = converter(binding, mode)
    batch = orders()
    assert decoded_rows(conv, conv.encode("orders", batch)) == batch.values.to_pylist()


def test_types_survive_with_the_registry(tmp_path: Path) -> None:
    registry = SqliteSchemaRegistry(tmp_path / "registry.sqlite")
    try:
        schema = Schema(
            name="typed",
            fields=(
                Field("id", t.int32(), nullable=False),
                Field("amount", t.decimal(10, 2)),
                Field("at", t.timestamp("UTC")),
                Field("blob", t.binary()),
            ),
            key_fields=("id",),
        )
        rows = [
            {
                "id": 1,
                "amount": decimal.Decimal("12.30"),
                "at": datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.UTC),
                "blob": b"\x00\xff",
            },
            {"id": 2, "amount": None, "at": None, "blob": None},
        ]
        values = pa.RecordBatch.from_pylist(rows, schema=to_arrow_schema(schema))
        batch = RecordBatch(values, schema)
        for mode in ("binary", "structured"):
            conv = CloudEventsConverter(registry, pipeline="p", binding="mqtt", mode=mode)
            encoded = conv.encode("typed", batch)
            decoded = conv.decode_with_headers(
                "typed", encoded.values, encoded.keys, encoded.headers
            )
            (group,) = decoded.groups
            assert group.schema == schema
            assert group.values.to_pylist() == rows, mode
    finally:
        registry.close()


def test_an_external_registry_names_the_dataschema() -> None:
    class Registry(HttpSchemaRegistry):
        def register(self, subject: str, avro_schema: Any) -> int:
            return 42

    registry = Registry("https://user:secret@registry.example:8081/prefix")
    headers = dict(row_headers(converter("kafka", registry=registry).encode("orders", orders()), 0))
    assert headers["ce_dataschema"] == b"https://registry.example:8081/prefix/schemas/ids/42"
    body = converter("kafka", "structured", registry=registry).encode("orders", orders()).values
    assert json.loads(body[0].as_py())["dataschema"].endswith("/schemas/ids/42")


def sdk_structured(data: dict[str, Any], **attributes: Any) -> bytes:
    event = CloudEvent(
        attributes={"type": "com.example.order", "source": "/shop", "id": "e1", **attributes},
        data=data,
    )
    return kafka.to_structured(event, JSONFormat()).value


def test_structured_events_of_other_producers_are_read() -> None:
    """The SDK's own events (spaced JSON), one whose ``data`` is not its last member, one
    with ``data_base64``, and one with a ``data`` key nested in its data."""
    spaced = sdk_structured({"id": 1, "name": "a"})
    attributes = {"specversion": "1.0", "source": "/s", "type": "t"}
    data_first = json.dumps(
        {"data": {"id": 2, "name": "b", "data": {"x": 1}}, "id": "e2", **attributes}
    ).encode()
    base64_data = json.dumps(
        {**attributes, "id": "e3", "data_base64": "eyJpZCI6MywibmFtZSI6ImMifQ=="}
    ).encode()
    nested = (
        b'{"specversion":"1.0","id":"e4","source":"/s","type":"t",'
        b'"data":{"id":4,"name":"d","data":{"x":2}}}'
    )
    bodies = pa.array([spaced, data_first, base64_data, nested], pa.binary())
    structured = [[("content-type", b"application/cloudevents+json; charset=UTF-8")]] * 4
    headers = pa.array(structured, HEADERS_TYPE)
    decoded = converter().decode_with_headers("foreign", bodies, None, headers)
    assert decoded.failed == {}
    rows = {}
    for group in decoded.groups:
        for row, value in zip(group.rows.to_pylist(), group.values.to_pylist(), strict=True):
            rows[row] = (value["id"], value["name"])
    assert rows == {0: (1, "a"), 1: (2, "b"), 2: (3, "c"), 3: (4, "d")}


def test_a_structured_body_without_headers_is_recognised() -> None:
    """An MQTT 3 client (or ``decode`` without headers) sends no content type."""
    conv = converter("mqtt", "structured")
    encoded = conv.encode("orders", orders())
    decoded = conv.decode("orders", encoded.values, encoded.keys)
    assert decoded.failed == {}
    assert [row["id"] for g in decoded.groups for row in g.values.to_pylist()] == [1, 2, 3]


def test_events_without_json_data_fail_with_the_reason() -> None:
    bodies = pa.array(
        [
            b"<order/>",
            sdk_structured({"id": 1}, datacontenttype="application/xml"),
            b"{not json",
            b'{"id":4}',
            b'{"id":5}',
        ],
        pa.binary(),
    )
    headers = pa.array(
        [
            [("content-type", b"text/xml")],
            [("content-type", b"application/cloudevents+json")],
            [("Content-Type", b"application/cloudevents+json")],
            [("ce_id", b"x"), ("content-type", b"application/vnd.shop+json; v=2")],
            None,
        ],
        HEADERS_TYPE,
    )
    decoded = converter().decode_with_headers("bad", bodies, None, headers)
    assert sorted(decoded.failed) == [0, 1, 2]
    assert "text/xml" in str(decoded.failed[0]) and "JSON" in str(decoded.failed[0])
    assert "application/xml" in str(decoded.failed[1])
    assert "not JSON" in str(decoded.failed[2])
    assert [g.rows.to_pylist() for g in decoded.groups] == [[3, 4]]


def test_nats_binary_events_give_their_content_type_as_ce_datacontenttype() -> None:
    conv = converter("nats")
    headers = pa.array([[("ce-datacontenttype", b"text/plain")]], HEADERS_TYPE)
    decoded = conv.decode_with_headers("t", pa.array([b'{"a":1}']), None, headers)
    assert list(decoded.failed) == [0]


def test_refused_schema_rows_pass_the_headers_on() -> None:
    conv = RefusedSchemaRows(converter("kafka", "structured"))
    encoded = conv.encode("orders", orders())
    assert encoded.headers is not None
    decoded = conv.decode_with_headers("orders", encoded.values, encoded.keys, encoded.headers)
    assert decoded.failed == {} and decoded.groups[0].values.num_rows == 3


# -- the runtime's side ------------------------------------------------------------------


def test_merged_headers_put_the_formats_first_row_by_row() -> None:
    first = pa.array([[("a", b"1")], None, [], [("b", b"2"), ("c", b"3")], None], HEADERS_TYPE)
    then = pa.array([None, None, [("x", b"9")], [("y", b"8")], []], HEADERS_TYPE)
    merged = merged_headers(first, then)
    assert merged is not None
    assert merged.to_pylist() == [
        [("a", b"1")],
        None,
        [("x", b"9")],
        [("b", b"2"), ("c", b"3"), ("y", b"8")],
        [],
    ]
    sliced = merged_headers(first.slice(3), then.slice(3))
    assert sliced is not None
    assert sliced.to_pylist() == [[("b", b"2"), ("c", b"3"), ("y", b"8")], []]
    assert merged_headers(None, then) is then and merged_headers(first, None) is first


def test_merged_headers_leave_out_the_records_entries_of_a_name_the_format_sets() -> None:
    """A record's own ``content-type`` (an MQTT message's) gives way to the format's; its
    other headers stay, in order, duplicates of other names included."""
    first = pa.array(
        [[("content-type", b"application/json")], None, [("content-type", b"application/json")]],
        HEADERS_TYPE,
    )
    then = pa.array(
        [
            [("content-type", b"text/plain"), ("site", b"a"), ("site", b"b")],
            [("content-type", b"text/plain")],
            [("x", b"1")],
        ],
        HEADERS_TYPE,
    )
    merged = merged_headers(first, then)
    assert merged is not None
    assert merged.to_pylist() == [
        [("content-type", b"application/json"), ("site", b"a"), ("site", b"b")],
        [],
        [("content-type", b"application/json"), ("x", b"1")],
    ]
    sliced = merged_headers(first.slice(1), then.slice(1))
    assert sliced is not None
    assert sliced.to_pylist() == [[], [("content-type", b"application/json"), ("x", b"1")]]


def test_cloudevents_options_belong_to_format_cloudevents() -> None:
    base = {"name": "p", "source": {"connector": "csv", "path": "x.csv"}}
    config = PipelineConfig.model_validate(
        {**base, "format": "cloudevents", "cloudevents_mode": "structured"}
    )
    assert (config.cloudevents_mode, config.cloudevents_type) == ("structured", "omconnect.record")
    with pytest.raises(ValueError, match="cloudevents_mode is for format: cloudevents"):
        PipelineConfig.model_validate({**base, "cloudevents_mode": "structured"})
    with pytest.raises(ValueError, match="cloudevents_mode"):
        PipelineConfig.model_validate({**base, "format": "cloudevents", "cloudevents_mode": "x"})
    with pytest.raises(ValueError, match="cloudevents_type"):
        PipelineConfig.model_validate({**base, "format": "cloudevents", "cloudevents_type": ""})


def test_large_batches_go_through_both_modes() -> None:
    n = 30_000
    values = pa.record_batch({"id": np.arange(n), "name": pa.array(["x"] * n)})
    batch = RecordBatch(
        values,
        from_arrow_schema(values.schema, name="t", key_fields=("id",)),
        timestamps=pa.array(np.arange(n, dtype=np.int64)),
    )
    for binding, mode in (("nats", "binary"), ("kafka", "structured")):
        conv = converter(binding, mode)
        encoded = conv.encode("t", batch)
        assert len(encoded.values) == n
        decoded = conv.decode_with_headers("t", encoded.values, encoded.keys, encoded.headers)
        assert decoded.groups[0].values.num_rows == n
