"""Every pipeline file in pipelines/ validates and runs to completion with ``--once``, the
broker examples (``orders-to-<broker>.yaml``) against the real servers, and they deliver what
their header comments promise, with the commands and the extra those comments name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pytest
import redis
import sqlalchemy as sa
import yaml

from omconnect.runtime.state.offsets.nats_kv import bucket_name
from tests.state.offset_stores import delete_nats_bucket
from tests.support.kafka_server import TEST_OPTIONS, KafkaServerUnavailable, start_tansu
from tests.support.modbus_server import ModbusTestServer
from tests.support.mosquitto_server import delete_test_prefixes as delete_mqtt_test_prefixes
from tests.support.mosquitto_server import (
    device_topic_root,
    end_session,
    mqtt_test_url,
    shared_address,
)
from tests.support.nats_server import delete_test_namespaces, nats_test_url
from tests.support.omconnect_process import REPO, omconnect
from tests.support.opcua_server import OpcuaServerProcess
from tests.support.rabbitmq_server import amqp_test_url, delete_test_declarations, raw_channel
from tests.support.redis_server import delete_test_prefixes, redis_test_url
from tests.support.s3_server import S3Server
from tests.support.sql_databases import drop_replication_slot, open_database, sqlalchemy_url

PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))
README = (REPO / "README.md").read_text()
# ``broker: ${VAR:-scheme://...}``: the variable a pipeline's broker URL comes from.
BROKER_VARIABLE = re.compile(
    r"^\$\{(?P<variable>[A-Z][A-Z0-9_]*):-(?P<default>(?P<scheme>[a-z]+)://.*)\}$"
)


def _config(pipeline: Path) -> dict:
    return dict(yaml.safe_load(pipeline.read_text()))


def _broker(pipeline: Path) -> re.Match[str] | None:
    """The ``${VAR:-default}`` of a pipeline's ``broker:``; None for a URL written out."""
    return BROKER_VARIABLE.match(str(_config(pipeline).get("broker", "")))


def _server_scheme(pipeline: Path) -> str | None:
    """The scheme of the server broker whose URL the pipeline takes from a variable."""
    broker = _broker(pipeline)
    return broker["scheme"] if broker and broker["scheme"] != "embedded" else None


# The examples of the server brokers (orders-to-<broker>.yaml).
BROKER_EXAMPLES = [p for p in PIPELINES if _server_scheme(p)]


def test_there_are_pipelines() -> None:
    assert PIPELINES, "pipelines/ must hold at least the quick start"


# What a pipeline's header says to run first: the database pipelines move the quick start's
# orders into PostgreSQL and back out.
RUN_FIRST = {
    "topic-to-postgres.yaml": ["quickstart.yaml"],
    "postgres-to-topic.yaml": ["quickstart.yaml", "topic-to-postgres.yaml"],
    "postgres-to-parquet.yaml": ["quickstart.yaml", "topic-to-postgres.yaml"],
    "postgres-cdc.yaml": ["quickstart.yaml", "topic-to-postgres.yaml"],
    "topic-to-s3-parquet.yaml": ["quickstart.yaml"],
}


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """``POSTGRES_URL`` (the one variable the database pipelines take) for a fresh
    schema of the machine's PostgreSQL, first in the search path."""
    for database in open_database("postgresql", tmp_path):
        yield f"{database.url}?options=-csearch_path%3D{database.schema}"


@pytest.fixture
def cdc_slot(postgres_url: str) -> Iterator[str]:
    """``CDC_SLOT`` for the CDC pipeline: a slot of this test's own, dropped after (a slot
    left behind would keep WAL on the server), with its publication."""
    slot = f"omc_test_{uuid.uuid4().hex[:12]}"
    yield slot
    engine = sa.create_engine(sqlalchemy_url(postgres_url.split("?")[0]))
    with engine.connect() as connection:
        drop_replication_slot(connection, slot)
    engine.dispose()


def _private_kafka(clean_ups: contextlib.ExitStack) -> str:
    """A Tansu of the test's own: Kafka has no namespace to keep the examples' fixed topic,
    group and offsets apart, so not the shared broker (nor OMCONNECT_TEST_KAFKA's, where a
    second session would find the first one's positions). It starts in a fraction of a
    second, with memory storage, and is stopped after the test."""
    try:
        server = start_tansu()
    except KafkaServerUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    clean_ups.callback(server.stop)
    # Tansu lets read_committed readers see aborted transactions (tests/support/kafka_server).
    return server.url(f"{TEST_OPTIONS}&transactions=false")


def _nats_namespace(clean_ups: contextlib.ExitStack) -> str:
    """The shared NATS in a namespace of its own: its streams, groups and offsets buckets
    are deleted after."""
    clean_ups.callback(delete_test_namespaces)
    url = nats_test_url()
    [namespace] = parse_qs(urlsplit(url).query)["namespace"]
    clean_ups.callback(lambda: asyncio.run(delete_nats_bucket(bucket_name(namespace))))
    return url


def _under_a_prefix(
    test_url: Callable[[], str], delete: Callable[[], None]
) -> Callable[[contextlib.ExitStack], str]:
    """A shared server under a prefix of its own, what was made under it deleted after."""

    def url(clean_ups: contextlib.ExitStack) -> str:
        clean_ups.callback(delete)
        return test_url()

    return url


SERVERS: dict[str, Callable[[contextlib.ExitStack], str]] = {
    "kafka": _private_kafka,
    "nats": _nats_namespace,
    "redis": _under_a_prefix(redis_test_url, delete_test_prefixes),
    "amqp": _under_a_prefix(amqp_test_url, delete_test_declarations),
    "mqtt": _under_a_prefix(mqtt_test_url, delete_mqtt_test_prefixes),
}
"""How a test gets a broker of each scheme of its own, as tests/brokers/conftest.py builds
them (a namespace or name prefix per URL on the shared servers, cleaned up after)."""


@pytest.fixture
def broker_url() -> Iterator[Callable[[str], str]]:
    """``broker_url(scheme)``: a URL of a real server that is this test's own; what the test
    made there is deleted after it, whichever way it ended."""
    with contextlib.ExitStack() as clean_ups:
        yield lambda scheme: SERVERS[scheme](clean_ups)


def _mqtt_device_env(clean_ups: contextlib.ExitStack, _tmp_path: Path) -> dict[str, str]:
    """The shared Mosquitto, under a topic root and a session of the test's own (ended after:
    a persistent session left behind would keep messages on the server)."""
    topic_root = device_topic_root()
    client = f"{topic_root}-source"
    clean_ups.callback(end_session, shared_address(), client)
    return {
        "MQTT_URL": f"mqtt://{shared_address()}",
        "MQTT_TOPIC_ROOT": topic_root,
        "MQTT_CLIENT_ID": client,
    }


def _opcua_env(clean_ups: contextlib.ExitStack, tmp_path: Path) -> dict[str, str]:
    """An OPC-UA server of the test's own, with the example's nodes."""
    server = OpcuaServerProcess(tmp_path / "opcua-server")
    server.start()
    clean_ups.callback(server.stop)
    return {"OPCUA_URL": server.url}


def _modbus_env(clean_ups: contextlib.ExitStack, _tmp_path: Path) -> dict[str, str]:
    """A Modbus TCP server of the test's own."""
    server = clean_ups.enter_context(ModbusTestServer())
    return {"MODBUS_URL": server.url}


def _s3_env(clean_ups: contextlib.ExitStack, _tmp_path: Path) -> dict[str, str]:
    """An S3 endpoint of the test's own (moto's server mode) with an empty bucket."""
    server = S3Server.start()
    clean_ups.callback(server.stop)
    options = server.options()
    return {
        "S3_ENDPOINT_URL": options["endpoint_url"],
        "S3_BUCKET": server.bucket(),
        "S3_REGION": options["region"],
        "S3_ACCESS_KEY_ID": options["access_key_id"],
        "S3_SECRET_ACCESS_KEY": options["secret_access_key"],
    }


DEVICES: dict[str, Callable[[contextlib.ExitStack, Path], dict[str, str]]] = {
    "mqtt-to-topic.yaml": _mqtt_device_env,
    "opcua-to-topic.yaml": _opcua_env,
    "modbus-to-topic.yaml": _modbus_env,
    "topic-to-s3-parquet.yaml": _s3_env,
}
"""The variables of the examples that read a device or write a store, pointed at a server
the test starts (or a part of the shared one) and cleans up."""


@pytest.mark.parametrize(
    "pipeline", [p for p in PIPELINES if p not in BROKER_EXAMPLES], ids=lambda p: p.name
)
def test_pipeline_validates_and_runs_once(
    pipeline: Path, repo_copy: Path, postgres_url: str, cdc_slot: str, tmp_path: Path
) -> None:
    """(The broker examples validate and run in their own test, on a server of their own.)"""
    with contextlib.ExitStack() as clean_ups:
        env = {"POSTGRES_URL": postgres_url, "CDC_SLOT": cdc_slot}
        if pipeline.name in DEVICES:
            env.update(DEVICES[pipeline.name](clean_ups, tmp_path))
        for first in RUN_FIRST.get(pipeline.name, []):
            ran = omconnect("run", f"pipelines/{first}", "--once", cwd=repo_copy, env=env)
            assert ran.returncode == 0, ran.stderr
        relative = pipeline.relative_to(REPO)
        checked = omconnect("validate", str(relative), cwd=repo_copy, env=env)
        assert checked.returncode == 0, checked.stderr
        ran = omconnect("run", str(relative), "--once", cwd=repo_copy, env=env)
        assert ran.returncode == 0, ran.stderr


def test_quickstart_delivers_every_positive_order_to_parquet(repo_copy: Path) -> None:
    ran = omconnect("run", "pipelines/quickstart.yaml", "--once", cwd=repo_copy)
    assert ran.returncode == 0, ran.stderr
    source = pacsv.read_csv(repo_copy / "pipelines/data/orders.csv")
    expected = sorted(
        i
        for i, a in zip(source["order_id"].to_pylist(), source["amount"].to_pylist(), strict=True)
        if a > 0
    )
    written = ds.dataset(repo_copy / "out/orders", format="parquet").to_table()
    assert sorted(written["order_id"].to_pylist()) == expected
    assert set(written.column_names) == set(source.column_names)

    again = omconnect("run", "pipelines/quickstart.yaml", "--once", cwd=repo_copy)
    assert again.returncode == 0, again.stderr
    rewritten = ds.dataset(repo_copy / "out/orders", format="parquet").to_table()
    assert rewritten.num_rows == len(expected), "a second run must not read anything twice"

    tail = omconnect(
        "topics", "tail", "orders", "--from-beginning", "--max", "2", "--no-follow", cwd=repo_copy
    )
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [item["value"]["order_id"] for item in lines] == [1, 2]
    assert lines[0]["topic"] == "orders" and lines[0]["offset"] == 0
    # The OpenMessaging message id: the stable id the source gave the record.
    assert lines[0]["message_id"] == lines[0]["headers"]["oms.message_id"]
    assert lines[0]["message_id"] != lines[1]["message_id"]


def test_postgres_to_parquet_lands_the_table_and_then_only_new_rows(
    repo_copy: Path, postgres_url: str
) -> None:
    env = {"POSTGRES_URL": postgres_url}
    for first in RUN_FIRST["postgres-to-parquet.yaml"]:
        ran = omconnect("run", f"pipelines/{first}", "--once", cwd=repo_copy, env=env)
        assert ran.returncode == 0, ran.stderr
    engine = sa.create_engine(sqlalchemy_url(postgres_url))
    try:
        with engine.connect() as connection:
            ids = sorted(connection.execute(sa.text("SELECT order_id FROM orders")).scalars())
        pipeline = ["run", "pipelines/postgres-to-parquet.yaml", "--once"]
        ran = omconnect(*pipeline, cwd=repo_copy, env=env)
        assert ran.returncode == 0, ran.stderr
        out = repo_copy / "out" / "orders-from-postgres"
        files = sorted(out.glob("*.parquet"))
        assert files and all(f.name.startswith("orders-from-postgres.") for f in files)
        landed = ds.dataset(out, format="parquet").to_table()
        assert sorted(landed["order_id"].to_pylist()) == ids
        topics = omconnect("topics", "list", cwd=repo_copy)
        assert topics.returncode == 0, topics.stderr
        assert "orders-from-postgres" not in topics.stdout, "no topic was written"

        with engine.begin() as connection:  # a new order: a copy of the first, new id
            for statement in (
                "CREATE TEMP TABLE new_order AS SELECT * FROM orders WHERE order_id = :id",
                "UPDATE new_order SET order_id = order_id + 1000000",
                "INSERT INTO orders SELECT * FROM new_order",
            ):
                connection.execute(sa.text(statement), {"id": ids[0]})
        again = omconnect(*pipeline, cwd=repo_copy, env=env)
        assert again.returncode == 0, again.stderr
        added = sorted(set(out.glob("*.parquet")) - set(files))
        assert [pq_ids(f) for f in added] == [[ids[0] + 1_000_000]]
    finally:
        engine.dispose()


def pq_ids(path: Path) -> list[int]:
    return ds.dataset(path, format="parquet").to_table()["order_id"].to_pylist()


# -- the broker examples ----------------------------------------------------------------------

# The README's Brokers table: each scheme's URL form and the extra that installs its client.
README_BROKERS = {
    m["scheme"]: (m["url"], m["extra"])
    for m in re.finditer(
        r"^\| `(?P<url>(?P<scheme>[a-z]+)://[^`]*)` "
        r"\| (?:`(?P<extra>omconnect\[\w+\])`|\(none\)) \|",
        README,
        re.MULTILINE,
    )
}


def _header(pipeline: Path) -> list[str]:
    """The comment lines a pipeline file starts with, without their ``#`` and indentation."""
    header = []
    for line in pipeline.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    return header


def _header_commands(pipeline: Path, env: dict[str, str]) -> list[list[str]]:
    """The ``omconnect`` commands of the header, arguments after ``omconnect``, with the
    ``"$VAR"`` the header exported replaced by the test's value."""
    return [
        [env.get(arg[1:], arg) if arg.startswith("$") else arg for arg in shlex.split(line)[1:]]
        for line in _header(pipeline)
        if line.startswith("omconnect ")
    ]


def test_every_broker_of_the_readme_has_an_example_and_no_pipeline_names_a_server() -> None:
    """One example per server broker (the issue); a pipeline takes a server broker's URL from
    a variable, so the tests point it at a server of their own, never at a fixed address."""
    servers = {scheme for scheme in README_BROKERS if scheme != "embedded"}
    assert servers == set(SERVERS), "the README's brokers and the servers the tests start"
    examples = sorted(str(_server_scheme(p)) for p in BROKER_EXAMPLES)
    assert examples == sorted(servers), "one example per broker"
    for pipeline in PIPELINES:
        broker = str(_config(pipeline).get("broker", "embedded://"))
        no_server = broker.startswith("embedded://") or broker == "none"
        assert no_server or _broker(pipeline), pipeline.name


@pytest.mark.parametrize("example", BROKER_EXAMPLES, ids=lambda p: p.name)
def test_a_broker_example_header_says_what_the_readme_says(example: Path) -> None:
    """The header names the README's extra for its broker, exports the very URL the file
    falls back to (on the README's port for the scheme), and says how to run the file."""
    broker = _broker(example)
    assert broker is not None
    readme_url, extra = README_BROKERS[broker["scheme"]]
    header = "\n".join(_header(example))
    assert f"pip install '{extra}'" in header
    assert f"export {broker['variable']}={broker['default']}" in header.splitlines()
    assert urlsplit(broker["default"]).port == urlsplit(readme_url).port
    assert f"omconnect run pipelines/{example.name} --once" in header.splitlines()


def _positive_orders(orders: pa.Table) -> Counter[int]:
    """The quick start's promise: every order of the CSV with a positive amount, once."""
    pairs = zip(orders["order_id"].to_pylist(), orders["amount"].to_pylist(), strict=True)
    return Counter(order for order, amount in pairs if amount > 0)


def _written(directory: Path, sink: dict) -> pa.Table:
    """What the example's sink wrote: its Parquet files or its JSON lines."""
    path = directory / sink["path"]
    if sink["connector"] == "parquet":
        return ds.dataset(path, format="parquet").to_table()
    assert sink["connector"] == "jsonl", sink
    rows = [json.loads(line) for file in sorted(path.glob("*.jsonl")) for line in file.open()]
    return pa.Table.from_pylist(rows)


Entry = tuple[bytes, dict[bytes, bytes]]
"""A Redis stream entry as redis-py returns it: its id and its fields."""


def _check_redis_entries_are_plain_fields(url: str, topic: str) -> None:
    """What the header shows with ``redis-cli XRANGE``: plain fields, JSON value and key."""
    options = urlsplit(url)
    [prefix] = parse_qs(options.query)["prefix"]
    client = redis.Redis(host=options.hostname or "", port=options.port or 6379)
    try:
        entries = cast(list[Entry], client.xrange(f"{prefix}:{topic}:0", count=1))
    finally:
        client.close()
    [(_, fields)] = entries
    assert set(fields) == {b"value", b"key", b"timestamp", b"message_id", b"h:content-type"}
    assert fields[b"h:content-type"] == b"application/json"
    order = json.loads(fields[b"value"])
    assert json.loads(fields[b"key"]) == {"order_id": order["order_id"]}


def _check_rabbitmq_names(url: str, topic: str, pipeline: str) -> None:
    """What the header names: the topic's exchange and the sink's queue (under the test's
    prefix, which the default URL does not have)."""
    [prefix] = parse_qs(urlsplit(url).query)["prefix"]

    async def look() -> None:
        async with raw_channel(url) as channel:
            await channel.get_exchange(f"{prefix}.{topic}", ensure=True)
            await channel.declare_queue(f"{prefix}.omconnect.{pipeline}", passive=True)

    asyncio.run(look())


@pytest.mark.parametrize("example", BROKER_EXAMPLES, ids=lambda p: p.name)
def test_a_broker_example_delivers_every_positive_order_once(
    example: Path, repo_copy: Path, broker_url: Callable[[str], str]
) -> None:
    """The example validates, and the header's commands, as written, work against a real
    server: the run delivers the quick start's positive orders to the sink once, the
    commands after it show what the header says, and a second run reads and delivers
    nothing more."""
    config = _config(example)
    broker = _broker(example)
    assert broker is not None
    url = broker_url(broker["scheme"])
    env = {broker["variable"]: url}
    orders = pacsv.read_csv(repo_copy / "pipelines/data/orders.csv")
    expected = _positive_orders(orders)
    topic, partitions = config["topic"], config.get("partitions", 1)
    checked = omconnect("validate", f"pipelines/{example.name}", cwd=repo_copy, env=env)
    assert checked.returncode == 0, checked.stderr

    for command in _header_commands(example, env):
        done = omconnect(*command, cwd=repo_copy, env=env)
        assert done.returncode == 0, (command, done.stderr)
        if command[:2] == ["topics", "list"]:
            assert [topic, str(partitions), str(expected.total())] in (
                line.split() for line in done.stdout.splitlines()
            ), done.stdout
        elif command[:2] == ["topics", "tail"]:
            tailed = [json.loads(line) for line in done.stdout.splitlines()]
            assert [m["value"]["order_id"] for m in tailed] == sorted(expected)[:3]
        elif command[:2] == ["offsets", "list"]:
            listed = [json.loads(line) for line in done.stdout.splitlines()]
            [source] = [entry for entry in listed if entry["kind"] == "source"]
            assert source["offset"]["row"] == orders.num_rows, "the whole CSV was read"

    written = _written(repo_copy, config["sink"])
    assert Counter(written["order_id"].to_pylist()) == expected
    assert set(written.column_names) == set(orders.column_names)
    # offsets: broker keeps the source's positions in the broker, none in the state directory.
    in_state = (repo_copy / ".omconnect" / "offsets.sqlite").exists()
    assert in_state == (config.get("offsets", "state") == "state")
    if broker["scheme"] == "redis":
        _check_redis_entries_are_plain_fields(url, topic)
    if broker["scheme"] == "amqp":
        _check_rabbitmq_names(url, topic, config["name"])

    again = omconnect("run", f"pipelines/{example.name}", "--once", cwd=repo_copy, env=env)
    assert again.returncode == 0, again.stderr
    assert "read=0 published=0 written=0" in again.stderr, again.stderr
    assert _written(repo_copy, config["sink"]).num_rows == expected.total()
