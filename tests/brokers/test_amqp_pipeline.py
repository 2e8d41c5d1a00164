"""A real pipeline through RabbitMQ: ``omconnect run --once`` of CSV files through
``broker: amqp://...`` into a JSON Lines sink, what another pipeline publishes to the topic
while it is stopped, the offsets and topics commands on it, and a command against a server
that is not there."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.support.local_servers import free_port
from tests.support.omconnect_process import omconnect
from tests.support.rabbitmq_server import amqp_test_url


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


def test_csv_files_go_through_rabbitmq_into_a_sink(tmp_path: Path) -> None:
    url = amqp_test_url()
    _csv(tmp_path / "in" / "a.csv", range(1, 201))
    _pipeline(tmp_path / "p.yaml", "p", url, "in/*.csv", sink=True)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _ids_written(tmp_path / "out") == Counter(range(1, 201))

    # Queues have no offsets: the sink's position is what its group's queue still holds.
    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["kind"] for line in listed.stdout.splitlines()] == ["source"]
    topics = omconnect("topics", "list", "--broker", url, cwd=tmp_path)
    assert topics.returncode == 0, topics.stderr
    assert [line.split() for line in topics.stdout.splitlines()[1:]] == [["items", "1", "0"]]
    tail = omconnect("topics", "tail", "items", "--broker", url, cwd=tmp_path)
    assert tail.returncode == 1 and "amqp:// is a queue broker" in tail.stderr, tail.stderr

    # Nothing new: a second run delivers nothing more.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "written=0" in again.stderr, again.stderr

    # While p is stopped, another pipeline publishes to its topic: p's queue keeps those
    # messages, and its next run writes them beside the rows of its own new file.
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


def test_a_server_that_cannot_be_reached_fails_the_command_in_one_line(tmp_path: Path) -> None:
    url = f"amqp://u:hunter2-canary@127.0.0.1:{free_port()}/"
    result = omconnect("topics", "list", "--broker", url, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"cannot connect to the RabbitMQ server at {url.split('@')[1].rstrip('/')} within 3 s "
        "(connection refused): check that RabbitMQ is running there and that the host and "
        "port of the broker URL are right"
    ]
