"""``format: cloudevents`` through Kafka (Tansu, tests/support/kafka_server.py): ``omconnect run
--once`` publishes a CSV file as CloudEvents, confluent-kafka's consumer reads the topic and the
CloudEvents SDK (the ``cloudevents`` package, no omconnect code) decodes every message, in
binary mode (``ce_`` headers) and in structured mode; the pipeline's own sink reads the
events back into the rows."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, from_structured
from cloudevents.core.formats.json import JSONFormat
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.support.kafka_server import shared_kafka_servers, shared_kafka_url
from tests.support.omconnect_process import omconnect

ROWS = 30


def write_pipeline(directory: Path, topic: str, mode: str) -> str:
    lines = ["id,name,placed"] + [
        f"{n},item-{n},2024-05-0{1 + n % 9}T10:00:00" for n in range(1, ROWS + 1)
    ]
    (directory / "orders.csv").write_text("\n".join(lines) + "\n")
    name = f"ce-{uuid.uuid4().hex[:8]}"
    (directory / "p.yaml").write_text(
        f"name: {name}\n"
        f"broker: {shared_kafka_url()}\n"
        "source: {connector: csv, path: orders.csv, key: [id]}\n"
        f"topic: {topic}\n"
        "format: cloudevents\n"
        f"cloudevents_mode: {mode}\n"
        "cloudevents_type: com.example.order\n"
        "sink: {connector: jsonl, path: out/}\n"
    )
    return name


def read_events(topic: str, mode: str) -> list[tuple[BaseCloudEvent, dict[str, bytes]]]:
    """Every message of ``topic`` (one partition) as the SDK decodes it, with its headers."""
    consumer = Consumer(
        {
            "bootstrap.servers": shared_kafka_servers(),
            "group.id": f"ce-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    decode = from_binary if mode == "binary" else from_structured
    read: list[tuple[BaseCloudEvent, dict[str, bytes]]] = []
    deadline = time.monotonic() + 30
    try:
        while len(read) < ROWS and time.monotonic() < deadline:
            for message in consumer.consume(ROWS, 0.5):
                assert message.error() is None, message.error()
                headers = dict(message.headers() or [])
                kafka_message = KafkaMessage(headers, message.key(), message.value())
                read.append((decode(kafka_message, JSONFormat()), headers))
    finally:
        consumer.close()
    return read


def sunk_rows(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((directory / "out").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_cloudevents_sdk_reads_what_a_pipeline_publishes_to_kafka(
    tmp_path: Path, mode: str
) -> None:
    topic = f"ce-{mode}-{uuid.uuid4().hex[:8]}"
    name = write_pipeline(tmp_path, topic, mode)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    events = read_events(topic, mode)
    assert len(events) == ROWS
    by_id = {}
    for event, headers in events:
        assert event.get_specversion() == "1.0"
        assert event.get_type() == "com.example.order"
        assert event.get_source() == f"omconnect://{name}"
        assert event.get_datacontenttype() == "application/json"
        # The event id is the message id omconnect derived (also the oms.message_id header).
        assert event.get_id().encode() == headers["oms.message_id"]
        data = event.get_data()
        assert isinstance(data, dict)
        assert event.get_subject() == json.dumps({"id": data["id"]}, separators=(",", ":"))
        if mode == "binary":
            assert headers["content-type"] == b"application/json"
            assert headers["ce_id"] == headers["oms.message_id"]
        else:
            assert headers["content-type"] == b"application/cloudevents+json"
            assert not any(name.startswith("ce_") for name in headers)
        by_id[data["id"]] = data
    assert sorted(by_id) == list(range(1, ROWS + 1))
    assert by_id[7]["name"] == "item-7"
    assert datetime.datetime.fromisoformat(by_id[7]["placed"]).day == 8
    assert len({event.get_id() for event, _ in events}) == ROWS

    # The pipeline's sink read the events back into the rows.
    rows = sunk_rows(tmp_path)
    assert sorted(row["id"] for row in rows) == list(range(1, ROWS + 1))
    assert {row["id"]: row["name"] for row in rows}[7] == "item-7"
