"""Confluent's own consumer stack reads what omconnect publishes to Kafka: confluent-kafka's
``SchemaRegistryClient`` and ``AvroDeserializer`` (no omconnect code) decode the keys and
values of a topic that ``omconnect run`` filled, with the schemas fetched over HTTP from the
registry ``serve`` serves. Once with the pipeline's embedded registry served afterwards, once
with the pipeline registering in the served registry itself (``schema_registry: URL``).
Broker: Tansu (tests/support/kafka_server.py)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from tests.support.kafka_server import shared_kafka_servers, shared_kafka_url
from tests.support.omconnect_process import omconnect
from tests.support.served_worker import ServedWorker

ROWS = 40


def write_pipeline(directory: Path, topic: str, registry_url: str | None = None) -> None:
    lines = ["id,name,amount,placed"]
    lines += [f"{n},item-{n},{n}.25,2024-05-0{1 + n % 9}T10:00:00" for n in range(1, ROWS + 1)]
    (directory / "orders.csv").write_text("\n".join(lines) + "\n")
    (directory / "p.yaml").write_text(
        f"name: interop-{uuid.uuid4().hex[:8]}\n"
        f"broker: {shared_kafka_url()}\n"
        + (f"schema_registry: {registry_url}\n" if registry_url else "")
        + "source: {connector: csv, path: orders.csv, key: [id]}\n"
        f"topic: {topic}\n"
    )


def read_with_confluent(topic: str, registry_url: str) -> list[tuple[Any, Any]]:
    """Every (key, value) of ``topic`` (one partition), decoded by confluent-kafka's
    deserializer. The partition is assigned, not subscribed to: no group to join."""
    client = SchemaRegistryClient({"url": registry_url, "max.retries": 0})
    deserialize = AvroDeserializer(client)
    consumer = Consumer(
        {
            "bootstrap.servers": shared_kafka_servers(),
            "group.id": f"interop-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    read: list[tuple[Any, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(read) < ROWS and time.monotonic() < deadline:
            for message in consumer.consume(ROWS, 0.5):
                assert message.error() is None, message.error()
                key = deserialize(message.key(), SerializationContext(topic, MessageField.KEY))
                value = deserialize(
                    message.value(), SerializationContext(topic, MessageField.VALUE)
                )
                read.append((key, value))
    finally:
        consumer.close()
    return read


def check_rows(read: list[tuple[Any, Any]]) -> None:
    assert len(read) == ROWS
    by_id = {value["id"]: (key, value) for key, value in read}
    key, value = by_id[7]
    assert key == {"id": 7}
    assert (value["name"], value["amount"]) == ("item-7", 7.25)
    assert isinstance(value["placed"], datetime) and value["placed"].day == 8
    assert sorted(by_id) == list(range(1, ROWS + 1))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    pipelines = tmp_path / "served-pipelines"
    pipelines.mkdir()
    return pipelines


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_confluent_reads_a_topic_through_the_served_embedded_registry(
    workdir: Path, folder: Path
) -> None:
    topic = f"interop-{uuid.uuid4().hex[:10]}"
    write_pipeline(workdir, topic)
    ran = omconnect("run", "p.yaml", "--once", cwd=workdir)
    assert ran.returncode == 0, ran.stderr

    registry = SqliteSchemaRegistry(workdir / ".omconnect" / "registry.sqlite")
    try:
        with ServedWorker(folder, registry=registry) as worker:
            check_rows(read_with_confluent(topic, worker.url))
    finally:
        registry.close()


def test_a_pipeline_registers_in_an_external_registry_by_url(
    workdir: Path, folder: Path, tmp_path: Path
) -> None:
    topic = f"interop-{uuid.uuid4().hex[:10]}"
    registry = SqliteSchemaRegistry(tmp_path / "external" / "registry.sqlite")
    try:
        with ServedWorker(folder, registry=registry) as worker:
            write_pipeline(workdir, topic, registry_url=worker.url)
            ran = omconnect("run", "p.yaml", "--once", cwd=workdir)
            assert ran.returncode == 0, ran.stderr
            assert registry.subjects() == [f"{topic}-key", f"{topic}-value"]
            check_rows(read_with_confluent(topic, worker.url))
    finally:
        registry.close()
    assert not (workdir / ".omconnect" / "registry.sqlite").exists(), "no embedded registry"
