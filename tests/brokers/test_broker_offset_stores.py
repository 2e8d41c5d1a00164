"""Source positions stored in the broker (``offsets: broker``): a pipeline on ``kafka://`` keeps
them in the compacted topic ``__omconnect-offsets``, one on ``nats://`` in the key-value bucket
``omconnect-offsets-<namespace>``; it stops and resumes from them, and ``omconnect offsets``
lists, exports, resets and imports them there. Then what Kafka and NATS users see of them,
Kafka transactions (one writer per namespace), and the one-line errors of a broker that is
not there. The offset store contract itself runs on these stores in tests/state/offsets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from omconnect.runtime.state import OffsetStoreError
from omconnect.runtime.state.offsets.kafka_topic import DEFAULT_TOPIC, KafkaTopicOffsetStore
from omconnect.runtime.state.offsets.nats_kv import NatsKvOffsetStore, bucket_name
from omconnect.schemas.record import Position
from tests.state.offset_stores import delete_nats_bucket
from tests.support.kafka_server import TEST_OPTIONS, shared_kafka_servers, shared_kafka_url
from tests.support.local_servers import free_port
from tests.support.nats_server import nats_test_url
from tests.support.omconnect_process import omconnect


@pytest.fixture
def nats_url() -> Iterator[str]:
    """A ``nats://`` URL in a namespace of its own; its offsets bucket is deleted after (the
    broker tests' cleanup deletes the namespace's streams and groups)."""
    url = nats_test_url()
    yield url
    [namespace] = parse_qs(urlsplit(url).query)["namespace"]
    asyncio.run(delete_nats_bucket(bucket_name(namespace)))


def _pipeline(directory: Path, broker: str) -> str:
    """A pipeline that publishes ``in.csv`` (no sink: the source's positions are the point,
    and a run does not wait for a consumer group to form)."""
    name = f"offsets-{uuid.uuid4().hex[:10]}"
    (directory / "p.yaml").write_text(
        f"name: {name}\n"
        f"broker: '{broker}'\n"
        "offsets: broker\n"
        "source: {connector: csv, path: in.csv}\n"
        f"topic: items-{uuid.uuid4().hex[:8]}\n"
    )
    return name


def _source_entries(directory: Path) -> list[dict]:
    listed = omconnect("offsets", "list", "p.yaml", cwd=directory)
    assert listed.returncode == 0, listed.stderr
    return [e for e in map(json.loads, listed.stdout.splitlines()) if e["kind"] == "source"]


@pytest.mark.parametrize("broker", ["kafka", "nats"])
def test_a_pipeline_resumes_from_offsets_stored_in_its_broker(
    tmp_path: Path, broker: str, request: pytest.FixtureRequest
) -> None:
    url = shared_kafka_url() if broker == "kafka" else request.getfixturevalue("nats_url")
    _pipeline(tmp_path, url)
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    assert _source_entries(tmp_path) == [], "a pipeline that never ran has no positions"

    first = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "read=3 published=3" in first.stderr
    # state: still holds the lock and the schema registry, but no offsets.
    assert not (tmp_path / ".omconnect" / "offsets.sqlite").exists()
    [source] = _source_entries(tmp_path)
    assert source["partition"] == {"file": "in.csv"} and source["offset"]["row"] == 3

    with (tmp_path / "in.csv").open("a") as csv:
        csv.write("4,d\n5,e\n")
    second = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "read=2 published=2" in second.stderr, "the second run resumed after row 3"

    exported = omconnect("offsets", "export", "p.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["offset"]["row"] == 5
    (tmp_path / "offsets.jsonl").write_text(exported.stdout)
    reset = omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "removed 1 source position" in reset.stdout
    imported = omconnect("offsets", "import", "p.yaml", "offsets.jsonl", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert omconnect("offsets", "export", "p.yaml", cwd=tmp_path).stdout == exported.stdout

    with (tmp_path / "in.csv").open("a") as csv:
        csv.write("6,f\n")
    third = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "read=1 published=1" in third.stderr, "it resumed from the imported position"


def test_kafka_users_read_the_positions_as_json_records_of_a_compacted_topic(
    tmp_path: Path,
) -> None:
    url = shared_kafka_url()
    name = _pipeline(tmp_path, url)
    (tmp_path / "in.csv").write_text("id,name\n1,a\n")
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    reset = omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr

    servers = shared_kafka_servers()
    admin = AdminClient({"bootstrap.servers": servers})
    resource = ConfigResource("topic", DEFAULT_TOPIC)
    config = admin.describe_configs([resource])[resource].result(10)
    assert config is not None and config["cleanup.policy"].value == "compact"
    records = [
        (json.loads(key), None if value is None else json.loads(value))
        for key, value in _read_topic(servers, DEFAULT_TOPIC)
        if key is not None and json.loads(key)[0] == name
    ]
    # Kafka Connect's shape: the key names the pipeline and the source partition; a
    # tombstone (null value) is how a reset forgets it.
    [(key, offset), (same, tombstone)] = records
    assert key == same == [name, {"file": "in.csv"}]
    assert offset is not None and offset["row"] == 1
    assert tombstone is None


def _read_topic(servers: str, topic: str) -> list[tuple[Any, Any]]:
    """The key and value of every record of partition 0 of ``topic``."""
    reader = Consumer({"bootstrap.servers": servers, "group.id": "t", "enable.partition.eof": True})
    reader.assign([TopicPartition(topic, 0, 0)])
    found: list[tuple[Any, Any]] = []
    try:
        while True:
            message = reader.poll(10)
            assert message is not None, "no end of partition within 10 s"
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                return found
            assert error is None, error
            found.append((message.key(), message.value()))
    finally:
        reader.close()


def test_an_existing_offsets_topic_that_is_not_compacted_is_refused() -> None:
    servers = shared_kafka_servers()
    topic = f"__omconnect-offsets-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": servers})
    config = {"cleanup.policy": "delete"}
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(10)
    with pytest.raises(OffsetStoreError, match=r"cleanup\.policy=delete: .* make it compact"):
        KafkaTopicOffsetStore(shared_kafka_url(), topic)


def test_with_kafka_transactions_a_namespace_has_one_writer() -> None:
    """``transactions=true``: each put is a transaction (Tansu commits them; it cannot hide
    aborted ones, which the contract's tests would need), and a second writer of a namespace
    fences the first, which then refuses to write rather than fence it back."""
    url = f"kafka://{shared_kafka_servers()}?{TEST_OPTIONS}&transactions=true"
    topic = f"__omconnect-offsets-test-{uuid.uuid4().hex[:12]}"
    first = KafkaTopicOffsetStore(url, topic)
    first.put("p", [Position({"f": n}, {"n": 1}) for n in range(3)])
    first.put("other", [Position({"f": 0}, {"n": 7})])
    assert first.delete("p", {"f": 0}) == 1
    second = KafkaTopicOffsetStore(url, topic)
    assert second.all("p") == [Position({"f": n}, {"n": 1}) for n in (1, 2)]
    second.put("p", [Position({"f": 1}, {"n": 2})])
    for _attempt in range(2):
        with pytest.raises(OffsetStoreError, match="another process writes the positions"):
            first.put("p", [Position({"f": 1}, {"n": 99})])
    first.put("other", [Position({"f": 0}, {"n": 8})])  # its other namespaces are its own
    third = KafkaTopicOffsetStore(url, topic)
    assert third.get("p", {"f": 1}) == {"n": 2}
    assert third.get("other", {"f": 0}) == {"n": 8}
    for store in (first, second, third):
        store.close()


def test_nats_users_find_one_key_per_position_in_the_bucket(nats_url: str) -> None:
    store = NatsKvOffsetStore(nats_url)
    store.put("orders.v2", [Position({"table": "orders"}, {"lsn": 10})])
    store.put("", [Position({"f": "a"}, {"n": 1})])
    assert store.namespaces() == ["", "orders.v2"]

    async def keys() -> dict[str, dict]:
        import nats

        client = await nats.connect(nats_url.split("?")[0])
        try:
            bucket = await client.jetstream().key_value(store.bucket)
            return {k: json.loads((await bucket.get(k)).value or b"") for k in await bucket.keys()}
        finally:
            await client.close()

    found = asyncio.run(keys())
    assert store.bucket.startswith("omconnect-offsets-t")
    by_namespace = {key.split(".")[0]: value for key, value in found.items()}
    assert by_namespace == {
        "orders_2Ev2": {"partition": {"table": "orders"}, "offset": {"lsn": 10}},
        "_": {"partition": {"f": "a"}, "offset": {"n": 1}},
    }
    assert all(len(key.split(".")[1]) == 32 for key in found)
    store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        pytest.param(
            lambda: f"kafka://127.0.0.1:{free_port()}?connect_timeout_ms=500",
            "cannot reach the Kafka broker at 127.0.0.1:",
            id="kafka",
        ),
        pytest.param(
            lambda: f"nats://omc:s3cret@127.0.0.1:{free_port()}?connect_timeout=1",
            "cannot connect to the NATS server at 127.0.0.1:",
            id="nats",
        ),
    ],
)
def test_a_broker_that_is_not_there_is_one_line(
    tmp_path: Path, url: Callable[[], str], says: str
) -> None:
    _pipeline(tmp_path, url())
    (tmp_path / "in.csv").write_text("id,name\n1,a\n")
    for command in (("offsets", "reset", "p.yaml"), ("run", "p.yaml", "--once")):
        failed = omconnect(*command, cwd=tmp_path)
        assert failed.returncode == 1, failed.stderr
        lines = [line for line in failed.stderr.splitlines() if "INFO" not in line]
        assert len(lines) == 1 and says in lines[0], failed.stderr
        assert "s3cret" not in failed.stderr
