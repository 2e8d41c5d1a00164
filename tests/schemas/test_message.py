"""OpenMessaging messages travel losslessly through MessageBatch rows."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.schemas.message import (
    HEADER_PREFIX,
    ExtensionHeader,
    Header,
    Message,
    messages_to_batch,
)
from omconnect.schemas.message_batch import MessageBatch

FULL = Message(
    header=Header(
        message_id="m-1",
        destination="orders",
        born_timestamp=1_700_000_000_123,
        born_host="host-a:9000",
        qos=2,
        compression="zstd",
    ),
    extension_header=ExtensionHeader(
        partition=3,
        store_timestamp=1_700_000_000_200,
        store_host="broker-1",
        message_key=b"\x00key",
        correlation_id="corr",
        delay_time=500,
        transaction_id="tx-9",
        expire_time=1_700_000_100_000,
        trace_id="trace-é",
        delivery_count=4,
        priority=7,
    ),
    properties={"content-type": b"application/avro", "binary": b"\xff\x00"},
    data=b"\x01\x02",
)


def read_back(messages: list[Message], topic: str, partition: int | None) -> list[Message]:
    batch = messages_to_batch(messages).with_offsets(100)
    return [Message.from_batch_row(batch, i, topic, partition) for i in range(len(batch))]


def test_every_field_round_trips() -> None:
    assert read_back([FULL], "orders", 3) == [FULL]


def test_each_header_field_has_its_place_in_the_row() -> None:
    batch = messages_to_batch([FULL])
    assert batch.keys[0].as_py() == b"\x00key"
    assert batch.values[0].as_py() == b"\x01\x02"
    assert batch.timestamps[0].as_py() == 1_700_000_000_123
    headers = batch.header_dict(0)
    travelling = {f.name for f in fields(Header)} | {f.name for f in fields(ExtensionHeader)}
    broker_side = {"destination", "born_timestamp", "partition", "message_key"}
    assert {k for k in headers if k.startswith(HEADER_PREFIX)} == {
        HEADER_PREFIX + name for name in travelling - broker_side
    }
    assert headers["oms.trace_id"] == "trace-é".encode()
    assert headers["oms.priority"] == b"7"
    assert headers["content-type"] == b"application/avro"


def test_a_minimal_message_writes_only_its_id_and_host() -> None:
    message = Message(Header("id-1", "t", 5, "h"))
    batch = messages_to_batch([message])
    assert batch.header_dict(0) == {"oms.message_id": b"id-1", "oms.born_host": b"h"}
    assert batch.keys[0].as_py() is None
    assert read_back([message], "t", None) == [message]


def test_a_foreign_message_gets_an_id_from_its_position() -> None:
    batch = MessageBatch.build([b"v1", b"v2"], timestamps=9).with_offsets(41)
    message = Message.from_batch_row(batch, 1, "plain", 0)
    assert message == Message(
        Header("plain-0-42", "plain", 9, ""), ExtensionHeader(partition=0), {}, b"v2"
    )


def test_without_id_or_offsets_the_row_is_refused() -> None:
    batch = MessageBatch.build([b"v"], timestamps=9)
    with pytest.raises(ValueError, match="message_id"):
        Message.from_batch_row(batch, 0, "t", 0)


def test_reserved_property_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"oms\.trace_id"):
        Message(Header("i", "t", 0, "h"), properties={"oms.trace_id": b"x"})


def test_a_bad_integer_header_is_named() -> None:
    batch = MessageBatch.build([b"v"], timestamps=1, headers=[{"oms.priority": b"high"}])
    with pytest.raises(ValueError, match=r"oms\.priority"):
        Message.from_batch_row(batch.with_offsets(0), 0, "t", 0)


def test_unknown_reserved_headers_are_skipped() -> None:
    headers = [{"oms.message_id": b"m", "oms.from_the_future": b"x", "p": b"1"}]
    batch = MessageBatch.build([b"v"], timestamps=1, headers=headers)
    message = Message.from_batch_row(batch, 0, "t", None)
    assert message.properties == {"p": b"1"}


def test_one_batch_holds_one_destination() -> None:
    other = replace(FULL, header=replace(FULL.header, destination="elsewhere"))
    with pytest.raises(ValueError, match="destination"):
        messages_to_batch([FULL, other])


texts = st.text(max_size=6)
optional_ints = st.none() | st.integers(-(2**63), 2**63 - 1)
optional_texts = st.none() | texts


@st.composite
def messages(draw: st.DrawFn, partition: int) -> Message:
    header = Header(draw(texts), "topic", draw(st.integers(0, 2**62)), draw(texts))
    header = replace(header, qos=draw(st.integers(0, 2)), compression=draw(optional_texts))
    extension = ExtensionHeader(
        partition=partition,
        store_timestamp=draw(optional_ints),
        store_host=draw(optional_texts),
        message_key=draw(st.none() | st.binary(max_size=6)),
        correlation_id=draw(optional_texts),
        delay_time=draw(optional_ints),
        transaction_id=draw(optional_texts),
        expire_time=draw(optional_ints),
        trace_id=draw(optional_texts),
        delivery_count=draw(optional_ints),
        priority=draw(st.none() | st.integers(1, 10)),
    )
    properties = draw(
        st.dictionaries(texts.filter(lambda k: not k.startswith("oms.")), st.binary(max_size=6))
    )
    return Message(header, extension, properties, draw(st.none() | st.binary(max_size=8)))


@settings(max_examples=100, deadline=None)
@given(st.lists(messages(partition=5), max_size=5))
def test_random_messages_round_trip(batch: list[Message]) -> None:
    assert read_back(batch, "topic", 5) == batch
