"""How the amqp:// driver's messages look to RabbitMQ and to other AMQP clients: every
OpenMessaging field as properties and headers and back, what a headers table cannot hold
(repeated names, nulls, order, long ids, 64-bit timestamps), and messages other clients
published.

The tests use the shared RabbitMQ (``tests/support/rabbitmq_server.py``) under a name prefix
of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aio_pika
import pyarrow as pa
import pytest
from cloudevents.core.bindings import amqp
from cloudevents.core.formats.json import JSONFormat

from omconnect.runtime.brokers import ConsumedBatch, open_broker
from omconnect.runtime.converters import make_converter
from omconnect.runtime.converters.json import JsonConverter
from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch
from omconnect.schemas.record import RecordBatch
from tests.support.driver_checks import (
    as_the_runtime_sends,
    check_round_trip,
    messages_with_every_field,
)
from tests.support.rabbitmq_server import amqp_test_url, raw_channel, url_options

from .conftest import read_until, run_on, values


@pytest.fixture
def amqp_url() -> str:
    """A URL of the shared server under a name prefix of this test's (deleted after it)."""
    return amqp_test_url()


_PROPERTIES = {
    "content-type": b"application/vnd.apache.avro+binary",
    "ce_specversion": b"1.0",
    "ce_type": b"com.example.order",
    "user": b"plain text",
    "binary": b"\x00\x01\xfe",
    "name with spaces: and colons": b"x",
    "x-request-id": b"a name RabbitMQ's headers use",
    "om-key": b"a name the codec uses",
    "empty": b"",
    "unicode": "grüße".encode(),
}


def test_every_openmessaging_field_round_trips_as_amqp_properties(amqp_url: str) -> None:
    broker = open_broker(amqp_url)
    topic = f"h-{uuid.uuid4().hex[:8]}"
    sent = messages_with_every_field(topic, _PROPERTIES)

    async def body() -> tuple[list[ConsumedBatch], aio_pika.abc.AbstractIncomingMessage]:
        await broker.create_topic(topic)
        consumer = await broker.consumer("g", [topic])
        async with raw_channel(amqp_url) as raw:
            spy = await raw.declare_queue(exclusive=True)  # another client's view
            await spy.bind(url_options(amqp_url).prefix + "." + topic)
            await (await broker.producer()).send(topic, as_the_runtime_sends(sent))
            seen = await spy.get(timeout=5)
        return await read_until(consumer, lambda got: len(values(got)) >= 6), seen

    batches, seen = run_on(broker, body())
    check_round_trip(sent, batches, topic)
    # Other AMQP clients see properties and plain headers.
    assert seen.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert seen.message_id == "msg-0"
    assert seen.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert seen.content_type == "application/vnd.apache.avro+binary"
    assert seen.correlation_id == "corr-7"
    assert seen.routing_key == topic
    headers = seen.headers
    assert headers["om-key"] == bytearray(b"\x00\xff binary key")
    assert headers["om-time"] == 1_700_000_000_000
    assert headers["om-null"] is True, "message 0 has no body"
    assert headers["oms.trace_id"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert headers["ce_type"] == "com.example.order"
    assert headers["binary"] == bytearray(b"\x00\x01\xfe")
    assert "x-request-id" not in headers and "content-type" not in headers


def test_repeated_and_null_headers_long_ids_and_extreme_timestamps_round_trip(
    amqp_url: str,
) -> None:
    broker = open_broker(amqp_url)
    headers = pa.array(
        [
            [("a", b"1"), ("a", b"2"), ("n", None), ("content-type", b"\xff")],
            [("content-type", b"text/plain"), ("content-type", b"text/html")],
            [],
            None,
        ],
        HEADERS_TYPE,
    )
    sent = MessageBatch.build(
        [b"w", b"x", b"y", b"z"],
        keys=[b"", "ключ".encode(), None, b"\x00"],
        timestamps=[-(2**63), 2**63 - 1, -1, 0],
        headers=headers,
        message_ids=["i" * 300, None, "", "ü"],
    )

    async def body() -> list[ConsumedBatch]:
        consumer = await broker.consumer("g", ["t"])
        await (await broker.producer()).send("t", sent)
        return await read_until(consumer, lambda got: len(values(got)) >= 4)

    received = MessageBatch.concat([b.messages for b in run_on(broker, body())])
    assert received.headers.to_pylist() == sent.headers.to_pylist()
    assert received.timestamps.to_pylist() == sent.timestamps.to_pylist()
    assert received.keys.to_pylist() == sent.keys.to_pylist()
    assert received.message_ids.to_pylist() == sent.message_ids.to_pylist()


def test_messages_other_clients_publish_read_back_with_their_properties(amqp_url: str) -> None:
    broker = open_broker(amqp_url)

    async def body() -> list[ConsumedBatch]:
        consumer = await broker.consumer("g", ["sensors"])
        async with raw_channel(amqp_url) as raw:
            exchange = await raw.get_exchange(url_options(amqp_url).prefix + ".sensors")
            await exchange.publish(
                aio_pika.Message(
                    b'{"t": 21.5}',
                    headers={"unit": "celsius", "count": 3, "ok": True},
                    content_type="application/json",
                    message_id="s-1",
                    timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                ),
                routing_key="anything",
            )
        return await read_until(consumer, lambda got: len(values(got)) >= 1)

    (batch,) = run_on(broker, body())
    assert batch.topic == "sensors"
    assert batch.messages.values.to_pylist() == [b'{"t": 21.5}']
    assert batch.messages.keys.to_pylist() == [None]
    assert batch.messages.message_ids.to_pylist() == ["s-1"]
    assert batch.messages.timestamps.to_pylist() == [1_704_164_645_000]
    found = dict(batch.messages.headers[0].as_py())
    assert {k: found[k] for k in ("unit", "count", "ok", "content-type")} == {
        "unit": b"celsius",
        "count": b"3",
        "ok": b"true",
        "content-type": b"application/json",
    }


def test_json_bodies_carry_the_amqp_content_type(amqp_url: str) -> None:
    """``format: json`` labels its bodies; other AMQP clients read the label in the message's
    ``content_type`` property, not in its headers."""
    broker = open_broker(amqp_url)
    topic = f"j-{uuid.uuid4().hex[:8]}"
    rows = pa.record_batch({"id": pa.array([7], pa.int64())})
    encoded = JsonConverter().encode(topic, RecordBatch(rows, from_arrow_schema(rows.schema, "t")))
    sent = MessageBatch.build(values=encoded.values, headers=encoded.headers)

    async def body() -> aio_pika.abc.AbstractIncomingMessage:
        await broker.create_topic(topic)
        await broker.consumer("g", [topic])
        async with raw_channel(amqp_url) as raw:
            spy = await raw.declare_queue(exclusive=True)
            await spy.bind(url_options(amqp_url).prefix + "." + topic)
            await (await broker.producer()).send(topic, sent)
            return await spy.get(timeout=5)

    seen = run_on(broker, body())
    assert seen.content_type == "application/json"
    assert seen.body == b'{"id":7}'
    assert "content-type" not in (seen.headers or {})


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_cloudevents_sdk_reads_events_as_an_amqp_client_receives_them(
    amqp_url: str, mode: str
) -> None:
    """``format: cloudevents`` on RabbitMQ: the binding's ``cloudEvents_`` attributes in the
    headers table (which RabbitMQ gives AMQP 1.0 clients as application properties) and
    ``datacontenttype`` as the ``content_type`` property; the SDK's AMQP binding decodes what
    another client reads off the queue, with no omconnect code."""
    broker = open_broker(amqp_url)
    topic = f"ce-{uuid.uuid4().hex[:8]}"
    rows = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "name": ["a", "ü b"]})
    part = RecordBatch(
        rows,
        from_arrow_schema(rows.schema, "orders", key_fields=("id",)),
        timestamps=pa.array([1_706_704_200_123, None], pa.int64()),
        stream="public.orders",
        message_ids=pa.array(["id-1", "id-2"]),
    )
    converter = make_converter(
        "cloudevents", None, pipeline="shop", broker_scheme="amqp", cloudevents_mode=mode
    )
    encoded = converter.encode(topic, part)
    sent = MessageBatch.build(
        values=encoded.values,
        keys=encoded.keys,
        headers=encoded.headers,
        message_ids=pa.array(["id-1", "id-2"]),
    )

    async def body() -> list[aio_pika.abc.AbstractIncomingMessage]:
        await broker.create_topic(topic)
        await broker.consumer("g", [topic])
        async with raw_channel(amqp_url) as raw:
            spy = await raw.declare_queue(exclusive=True)
            await spy.bind(url_options(amqp_url).prefix + "." + topic)
            await (await broker.producer()).send(topic, sent)
            return [await spy.get(timeout=5), await spy.get(timeout=5)]

    seen = run_on(broker, body())
    events = [
        amqp.from_amqp(
            amqp.AMQPMessage(
                {"content-type": message.content_type},
                {
                    name: value
                    for name, value in (message.headers or {}).items()
                    if isinstance(value, (str, bool, int, bytes, bytearray))
                },
                message.body,
            ),
            JSONFormat(),
        )
        for message in seen
    ]
    assert [event.get_id() for event in events] == ["id-1", "id-2"]
    assert {event.get_source() for event in events} == {"omconnect://shop/public.orders"}
    assert {event.get_type() for event in events} == {"omconnect.record"}
    assert [event.get_subject() for event in events] == ['{"id":1}', '{"id":2}']
    assert [event.get_data() for event in events] == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "ü b"},
    ]
    assert events[0].get_time() == datetime(2024, 1, 31, 12, 30, 0, 123000, tzinfo=UTC)
    if mode == "binary":
        assert [m.content_type for m in seen] == ["application/json"] * 2
        names = set(seen[0].headers or {})
        assert {"cloudEvents_id", "cloudEvents_specversion", "cloudEvents_type"} <= names
        assert not {name for name in names if name.startswith(("ce_", "ce-", "cloudEvents:"))}
    else:
        assert [m.content_type for m in seen] == ["application/cloudevents+json"] * 2
