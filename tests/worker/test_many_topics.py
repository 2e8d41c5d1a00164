"""A pipeline's topics are its base topic and every ``<topic>.<stream>`` its source produces:
the sink reads them all, ``--once`` waits for them all, ``offsets list`` shows them all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from omconnect.runtime.brokers import open_broker
from omconnect.runtime.brokers.base import Capabilities
from omconnect.runtime.config.loader import load_pipeline
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.testing.fault_broker import FaultInjectingBroker
from tests.support.toy_connectors import COLLECTED

from .conftest import run_pipeline


def _pipeline(tmp_path: Path, source: str, extra: str = "", sink: str = "toy-collect") -> str:
    return (
        f"name: toy\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {source}\nsink: {{connector: {sink}}}\nformat: json\n{extra}"
    )


def _topics(tmp_path: Path) -> dict[str, tuple[int, int]]:
    async def body() -> dict[str, tuple[int, int]]:
        broker = open_broker(f"embedded://{tmp_path}/b")
        try:
            return {t.name: (t.partitions, t.messages) for t in await broker.list_topics()}
        finally:
            await broker.close()

    return asyncio.run(body())


def test_the_sink_reads_every_stream_topic_of_its_source(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [public.a, public.b], rows: 3}"
    metrics = run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source))
    collected = COLLECTED["default"]
    assert sorted((r["topic"], r["id"]) for r in collected.rows) == [
        ("toy.public.a", 0),
        ("toy.public.a", 1),
        ("toy.public.a", 2),
        ("toy.public.b", 0),
        ("toy.public.b", 1),
        ("toy.public.b", 2),
    ]
    assert metrics.rows_written == 6
    topics = _topics(tmp_path)
    assert topics["toy.public.a"] == (1, 3) and topics["toy.public.b"] == (1, 3)
    assert "toy" in topics, "the base topic exists too"

    offsets = asyncio.run(pipeline_offsets(load_pipeline(tmp_path / "p.yaml")))
    sink = {e["partition"]["topic"]: e["offset"]["offset"] for e in offsets if e["kind"] == "sink"}
    assert sink == {"toy.public.a": 3, "toy.public.b": 3}
    source_positions = sorted(
        (e["partition"]["stream"], e["offset"]["row"]) for e in offsets if e["kind"] == "source"
    )
    assert source_positions == [("public.a", 3), ("public.b", 3)]


def test_offsets_list_on_the_command_line_shows_every_topic(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [s1, s2], rows: 4}"
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source))
    listed = subprocess.run(
        [sys.executable, "-c", _CLI, "offsets", "list", str(tmp_path / "p.yaml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout
    rows = [json.loads(line) for line in listed.splitlines() if line.startswith("{")]
    assert {r["partition"]["topic"] for r in rows if r["kind"] == "sink"} == {"toy.s1", "toy.s2"}


# The CLI with the toy connectors registered (they are plugins of the test package).
_CLI = (
    "import sys; sys.path.insert(0, '.'); import tests.support.toy_connectors; "
    "from omconnect.runtime.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def test_declared_streams_get_their_topics_with_the_pipeline_partitions(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [x, y, empty], rows: 0, declare: true}"
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source, "partitions: 3\n"))
    topics = _topics(tmp_path)
    assert topics["toy.x"] == (3, 0)
    assert topics["toy.empty"] == (3, 0)


def test_streams_found_while_running_are_created_with_the_pipeline_partitions(
    tmp_path: Path,
) -> None:
    source = "{connector: toy-streams, streams: [late], rows: 20, keys: 7}"
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source, "partitions: 4\n"))
    assert _topics(tmp_path)["toy.late"] == (4, 20)
    assert sorted(COLLECTED["default"].ids()) == list(range(20))
    by_key: dict[str, set[int]] = {}
    for row in COLLECTED["default"].rows:
        by_key.setdefault(row["key"], set()).add(row["partition"])
    assert all(len(parts) == 1 for parts in by_key.values()), "a key stays in one partition"


def test_an_absolute_topic_is_published_but_not_sunk(tmp_path: Path) -> None:
    source = "{connector: toy-streams, rows: 4, batch_rows: 2, absolute_topic: heartbeats}"
    run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source))
    assert _topics(tmp_path)["heartbeats"][1] == 2
    assert sorted(COLLECTED["default"].ids()) == [0, 1, 2, 3]
    assert {r["topic"] for r in COLLECTED["default"].rows} == {"toy"}


def test_sink_only_pipelines_read_a_topic_list_or_a_pattern(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [eu, us, apac], rows: 2, declare: true}"
    producer = (
        f"name: toy\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        f"source: {source}\nformat: json\n"
    )
    (tmp_path / "produce.yaml").write_text(producer)
    run_pipeline(tmp_path / "produce.yaml", producer)

    listed = (
        f"name: listed\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        "topics: [toy.eu, toy.us]\nsink: {connector: toy-collect, name: listed}\nformat: json\n"
    )
    run_pipeline(tmp_path / "listed.yaml", listed)
    assert sorted({r["topic"] for r in COLLECTED["listed"].rows}) == ["toy.eu", "toy.us"]

    pattern = (
        f"name: pattern\nbroker: embedded://{tmp_path}/b\nstate: {tmp_path}/s\n"
        "topic_pattern: 'toy\\.(eu|apac)'\nsink: {connector: toy-collect, name: pattern}\n"
        "format: json\n"
    )
    run_pipeline(tmp_path / "pattern.yaml", pattern)
    assert sorted({r["topic"] for r in COLLECTED["pattern"].rows}) == ["toy.apac", "toy.eu"]
    assert len(COLLECTED["pattern"].rows) == 4


def test_the_sink_never_reads_the_dead_letter_topic(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [a], rows: 3}"
    text = _pipeline(tmp_path, source)

    async def seed_dead_letters() -> None:
        broker = open_broker(f"embedded://{tmp_path}/b")
        producer = await broker.producer()
        from omconnect.schemas.message_batch import MessageBatch

        await producer.send("toy.dlq", MessageBatch.build([b"{}"]))
        await broker.close()

    asyncio.run(seed_dead_letters())
    run_pipeline(tmp_path / "p.yaml", text)
    assert {r["topic"] for r in COLLECTED["default"].rows} == {"toy.a"}


class _NoEndOffsets(FaultInjectingBroker):
    """A broker that cannot tell its end offsets (an MQTT or RabbitMQ driver)."""

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return replace(self.inner.capabilities, end_offsets=False)


def test_once_ends_on_a_broker_without_end_offsets(tmp_path: Path) -> None:
    source = "{connector: toy-streams, streams: [a, b], rows: 30, batch_rows: 7}"
    broker = _NoEndOffsets(open_broker(f"embedded://{tmp_path}/b"))
    metrics = run_pipeline(tmp_path / "p.yaml", _pipeline(tmp_path, source), broker=broker)
    assert metrics.rows_written == 60
    assert sorted(COLLECTED["default"].ids("toy.a")) == list(range(30))
