"""Real pipelines through the ``kafka://`` driver: ``omconnect run --once`` of a CSV file into
a topic on Tansu (tests/support/kafka_server.py) and back out into a JSON lines sink, the way
tests/e2e runs them on the embedded broker; then the CLI's topic commands on the same broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.support.kafka_server import TEST_OPTIONS, shared_kafka_servers, shared_kafka_url
from tests.support.omconnect_process import omconnect

ROWS = 500


def _pipeline(directory: Path, broker: str, topic: str, extra: str = "") -> str:
    lines = ["id,name"] + [f"{n},item-{n}" for n in range(1, ROWS + 1)]
    (directory / "in.csv").write_text("\n".join(lines) + "\n")
    name = f"kafka-{uuid.uuid4().hex[:10]}"
    (directory / "p.yaml").write_text(
        f"name: {name}\n"
        f"broker: {broker}\n"
        "source: {connector: csv, path: in.csv}\n"
        f"topic: {topic}\n"
        "sink: {connector: jsonl, path: out/}\n" + extra
    )
    return name


def _sunk_ids(directory: Path) -> list[int]:
    rows = [
        json.loads(line)
        for path in sorted((directory / "out").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return sorted(int(row["id"]) for row in rows)


def test_a_csv_file_goes_through_kafka_into_a_sink(tmp_path: Path) -> None:
    url = shared_kafka_url()
    topic = f"items-{uuid.uuid4().hex[:10]}"
    _pipeline(tmp_path, url, topic)

    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _sunk_ids(tmp_path) == list(range(1, ROWS + 1))

    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _sunk_ids(tmp_path) == list(range(1, ROWS + 1)), "a second run delivers nothing new"

    listed = omconnect("topics", "list", "--broker", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split() == [topic, "1", str(ROWS)] for line in listed.stdout.splitlines())

    tailed = omconnect(
        "topics", "tail", topic, "--broker", url, "--from-beginning", "--no-follow",
        "--max", "3", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    first = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [(m["partition"], m["offset"]) for m in first] == [(0, 0), (0, 1), (0, 2)]
    assert first[0]["value"]["id"] == 1


def test_exactly_once_stores_the_positions_in_the_kafka_transaction(tmp_path: Path) -> None:
    """``exactly_once: true`` publishes and stores source positions in Kafka transactions
    (committed ones only: Tansu has those), so a second run publishes nothing again."""
    url = f"kafka://{shared_kafka_servers()}?{TEST_OPTIONS}&transactions=true"
    topic = f"once-{uuid.uuid4().hex[:10]}"
    name = _pipeline(tmp_path, url, topic, "exactly_once: true\n")

    held = []
    for _run in range(2):
        ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert _sunk_ids(tmp_path) == list(range(1, ROWS + 1))
        listed = omconnect("topics", "list", "--broker", url, cwd=tmp_path).stdout.splitlines()
        held += [int(line.split()[2]) for line in listed if line.split()[0] == topic]
        assert not any(name in line for line in listed), "the positions topic is internal"
    # The count is the log's extent: the rows and a commit marker per transaction.
    assert held[0] > ROWS and held[1] == held[0], "the second run published nothing"
