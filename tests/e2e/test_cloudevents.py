"""``format: cloudevents`` on the embedded broker: one pipeline publishes a CSV file as
CloudEvents, a sink-only pipeline with the same format reads the topic back into the rows, and
the CloudEvents SDK (its HTTP binding: ``ce-`` headers with percent-encoded values, the
binding the embedded log follows) decodes every stored message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat

from omconnect.runtime.brokers import open_broker
from tests.support.omconnect_process import omconnect

ROWS = 20


def stored_events(broker_path: Path, topic: str) -> list[BaseCloudEvent]:
    """Every message of ``topic`` on the embedded broker, decoded by the SDK."""

    async def read() -> list[BaseCloudEvent]:
        broker = open_broker(f"embedded://{broker_path}", create=False)
        events: list[BaseCloudEvent] = []
        try:
            consumer = await broker.consumer("sdk-check", [topic])
            for _attempt in range(50):
                for batch in await consumer.poll(1000, 0.1):
                    messages = batch.messages
                    for row in range(len(messages)):
                        headers = messages.headers[row].as_py() or []
                        message = HTTPMessage(
                            {name: value.decode() for name, value in headers},
                            messages.values[row].as_py(),
                        )
                        events.append(from_http(message, JSONFormat()))
                if len(events) >= ROWS:
                    break
        finally:
            await broker.close()
        return events

    return asyncio.run(read())


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_a_sink_pipeline_reads_cloudevents_back_into_rows(tmp_path: Path, mode: str) -> None:
    lines = ["code,amount"] + [f'"café {n}",{n}.5' for n in range(1, ROWS + 1)]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "publish.yaml").write_text(
        "name: publish\n"
        "source: {connector: csv, path: in.csv, key: [code]}\n"
        "topic: events\n"
        "format: cloudevents\n"
        f"cloudevents_mode: {mode}\n"
    )
    (tmp_path / "drain.yaml").write_text(
        "name: drain\ntopics: [events]\nformat: cloudevents\nsink: {connector: jsonl, path: out/}\n"
    )
    for pipeline in ("publish.yaml", "drain.yaml"):
        ran = omconnect("run", pipeline, "--once", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr

    rows = [
        json.loads(line)
        for path in sorted((tmp_path / "out").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert [(row["code"], row["amount"]) for row in rows] == [
        (f"café {n}", n + 0.5) for n in range(1, ROWS + 1)
    ]

    events = stored_events(tmp_path / ".omconnect", "events")
    assert len(events) == ROWS
    first = events[0]
    assert first.get_source() == "omconnect://publish"
    assert first.get_type() == "omconnect.record"
    assert first.get_subject() == '{"code":"café 1"}'  # percent-decoded, in binary mode
    assert first.get_data() == {"code": "café 1", "amount": 1.5}
    assert len({event.get_id() for event in events}) == ROWS
