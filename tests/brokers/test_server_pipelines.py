"""Real pipelines through the server brokers: ``omconnect run --once`` of CSV files through
``broker: <url>`` into a JSON Lines sink, then the offsets and topics commands on it. On a
log (redis://, nats://) the sink's group commits offsets, which ``offsets reset`` rewinds; on
a queue (amqp://, mqtt://) the group's queue keeps what another pipeline publishes to the
topic while the sink is stopped. (kafka:// has its own: test_kafka_pipeline.py.)"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.local_servers import free_port
from tests.support.mosquitto_server import mqtt_test_url
from tests.support.nats_server import nats_test_url
from tests.support.omconnect_process import omconnect
from tests.support.rabbitmq_server import amqp_test_url
from tests.support.redis_server import redis_test_url


def _csv(path: Path, ids: range) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,name,amount\n" + "".join(f"{n},item {n},{n * 1.5}\n" for n in ids))


def _ids_written(out: Path) -> Counter[int]:
    rows = [json.loads(line) for path in sorted(out.glob("**/*.jsonl")) for line in path.open()]
    assert all(r["name"] == f"item {r['id']}" and r["amount"] == r["id"] * 1.5 for r in rows)
    return Counter(r["id"] for r in rows)


def _pipeline(path: Path, name: str, url: str, source: str, sink: bool) -> None:
    text = f"name: {name}\nbroker: '{url}'\nsource: {{connector: csv, path: '{source}'}}\n"
    text += "topic: items\n" + ("sink: {connector: jsonl, path: out/}\n" if sink else "")
    path.write_text(text)


def _topics(url: str, cwd: Path) -> list[list[str]]:
    topics = omconnect("topics", "list", "--broker", url, cwd=cwd)
    assert topics.returncode == 0, topics.stderr
    return [line.split() for line in topics.stdout.splitlines()[1:]]


@pytest.mark.parametrize(
    ("test_url", "republished"),
    [
        # Redis keeps no message ids to drop re-sent messages by: the topic holds them twice.
        pytest.param(redis_test_url, 400, id="redis"),
        # The same message ids: the streams' duplicate window drops the re-sent messages.
        pytest.param(nats_test_url, 200, id="nats"),
    ],
)
def test_a_csv_file_goes_through_a_log_into_a_sink(
    tmp_path: Path, test_url: Callable[[], str], republished: int
) -> None:
    url = test_url()
    _csv(tmp_path / "in.csv", range(1, 201))
    _pipeline(tmp_path / "p.yaml", "p", url, "in.csv", sink=True)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _ids_written(tmp_path / "out") == Counter(range(1, 201))

    listed = [
        json.loads(line)
        for line in omconnect("offsets", "list", "p.yaml", cwd=tmp_path).stdout.splitlines()
    ]
    assert [x for x in listed if x["kind"] == "sink"] == [
        {"kind": "sink", "partition": {"topic": "items", "partition": 0}, "offset": {"offset": 200}}
    ]
    assert _topics(url, tmp_path) == [["items", "1", "200"]]
    tail = omconnect(
        "topics", "tail", "items", "--broker", url, "--from-beginning", "--no-follow", "--max",
        "3", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    tailed = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(m["partition"], m["offset"]) for m in tailed] == [(0, 0), (0, 1), (0, 2)]
    assert [m["value"]["id"] for m in tailed] == [1, 2, 3]

    # Nothing new: a second run delivers nothing more.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "written=0" in again.stderr, again.stderr
    assert _ids_written(tmp_path / "out") == Counter(range(1, 201))

    # From scratch: the source publishes every row again and the sink, rewound to 0, reads
    # the whole topic again.
    reset = omconnect("offsets", "reset", "p.yaml", "--sink", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "rewound the sink's consumer group" in reset.stdout
    rerun = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert _topics(url, tmp_path) == [["items", "1", str(republished)]]
    assert f"written={republished}" in rerun.stderr, rerun.stderr
    assert set(_ids_written(tmp_path / "out")) == set(range(1, 201))


@pytest.mark.parametrize(
    "test_url",
    [pytest.param(amqp_test_url, id="amqp"), pytest.param(mqtt_test_url, id="mqtt")],
)
def test_csv_files_go_through_a_queue_into_a_sink(
    tmp_path: Path, test_url: Callable[[], str]
) -> None:
    url = test_url()
    _csv(tmp_path / "in" / "a.csv", range(1, 201))
    _pipeline(tmp_path / "p.yaml", "p", url, "in/*.csv", sink=True)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _ids_written(tmp_path / "out") == Counter(range(1, 201))

    # A queue has no offsets: the sink's position is what its group's queue still holds.
    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["kind"] for line in listed.stdout.splitlines()] == ["source"]
    assert _topics(url, tmp_path) == [["items", "1", "0"]]
    tail = omconnect("topics", "tail", "items", "--broker", url, cwd=tmp_path)
    scheme = url.partition(":")[0]
    assert tail.returncode == 1 and f"{scheme}:// is a queue broker" in tail.stderr, tail.stderr

    # Nothing new: a second run delivers nothing more.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "written=0" in again.stderr, again.stderr

    # While p is stopped, another pipeline publishes to its topic: p's queue (on MQTT, the
    # session p's sink left parked, subscribed) keeps those messages, and p's next run writes
    # them beside the rows of its own new file.
    _csv(tmp_path / "other" / "in" / "q.csv", range(1001, 1051))  # the same record name
    _pipeline(tmp_path / "q.yaml", "q", url, "other/in/*.csv", sink=False)
    published = omconnect("run", "q.yaml", "--once", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    _csv(tmp_path / "in" / "b.csv", range(201, 251))
    rerun = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "written=100" in rerun.stderr, rerun.stderr
    expected = Counter([*range(1, 251), *range(1001, 1051)])
    assert _ids_written(tmp_path / "out") == expected, "each row once"


def test_a_rabbitmq_server_that_cannot_be_reached_fails_the_command_in_one_line(
    tmp_path: Path,
) -> None:
    url = f"amqp://u:hunter2-canary@127.0.0.1:{free_port()}/"
    result = omconnect("topics", "list", "--broker", url, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"cannot connect to the RabbitMQ server at {url.split('@')[1].rstrip('/')} within 3 s "
        "(connection refused): check that RabbitMQ is running there and that the host and "
        "port of the broker URL are right"
    ]
