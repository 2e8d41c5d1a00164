"""Poison records: with ``errors.tolerance: all`` the bad rows go to the dead letter topic with
their reason, stage and position while the good rows flow on; with ``none`` the run fails.
Without a broker (``broker: none``) too: dead letters then go to the embedded broker of the
state directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from omconnect.runtime.brokers import open_broker
from omconnect.schemas.message_batch import MessageBatch
from tests.support.omconnect_process import omconnect, tail_topic

ROWS = 1000


def write_half_bad_csv(path: Path) -> None:
    lines = ["id,amount"]
    for i in range(ROWS):
        lines.append(f"{i},{i}.50" if i % 2 == 0 else f"{i},not-a-number-{i}")
    path.write_text("\n".join(lines) + "\n")


def pipeline(tolerance: str, broker: str = "embedded://.omconnect") -> str:
    return f"""
name: poison
broker: {broker}
source:
  connector: csv
  path: orders.csv
  batch_size: 100
  columns: {{amount: string}}
transforms:
  - {{type: cast, fields: {{amount: "decimal(10,2)"}}}}
topic: poison
sink: {{connector: parquet, path: out/}}
errors: {{tolerance: {tolerance}}}
"""


BROKERS = pytest.mark.parametrize("broker", ["embedded://.omconnect", "none"])


@BROKERS
def test_half_bad_rows_go_to_the_dead_letter_topic_in_order(tmp_path: Path, broker: str) -> None:
    write_half_bad_csv(tmp_path / "orders.csv")
    (tmp_path / "p.yaml").write_text(pipeline("all", broker))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr

    written = ds.dataset(tmp_path / "out", format="parquet").to_table().sort_by("id")
    assert written["id"].to_pylist() == list(range(0, ROWS, 2))
    assert [str(a) for a in written["amount"].to_pylist()[:2]] == ["0.50", "2.50"]

    dead = tail_topic("poison.dlq", tmp_path)
    assert [item["value"]["id"] for item in dead] == list(range(1, ROWS, 2))
    first = dead[0]
    assert first["value"]["amount"] == "not-a-number-1"
    assert first["headers"]["omconnect.error.stage"] == "transform"
    assert "not-a-number-1" in first["headers"]["omconnect.error.reason"]
    assert first["headers"]["omconnect.error.pipeline"] == "poison"
    position = json.loads(first["headers"]["omconnect.error.position"])
    assert position["position"]["partition"] == {"file": "orders.csv"}

    # The positions covering the bad rows were committed: a second run reads nothing again.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(tail_topic("poison.dlq", tmp_path)) == ROWS // 2


@BROKERS
def test_tolerance_none_fails_the_run_and_commits_nothing_past_the_bad_row(
    tmp_path: Path, broker: str
) -> None:
    write_half_bad_csv(tmp_path / "orders.csv")
    (tmp_path / "p.yaml").write_text(pipeline("none", broker))
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 1
    assert "errors.tolerance is none" in ran.stderr
    assert "not-a-number-1" in ran.stderr
    offsets = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    assert '"kind": "source"' not in offsets.stdout


def test_undecodable_messages_reach_the_dead_letter_topic_as_they_were(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,a\n2,b\n")
    (tmp_path / "produce.yaml").write_text(
        "name: produce\nsource: {connector: csv, path: good.csv}\ntopic: mixed\n"
    )
    assert omconnect("run", "produce.yaml", "--once", cwd=tmp_path).returncode == 0

    async def append_garbage() -> None:
        broker = open_broker(f"embedded://{tmp_path / '.omconnect'}")
        producer = await broker.producer()
        poison = MessageBatch.build(values=[b"\x00\x00\x00\x03\xe7garbage", b"plain text"])
        await producer.send("mixed", poison)
        await producer.close()
        await broker.close()

    asyncio.run(append_garbage())
    assert omconnect("run", "produce.yaml", "--once", cwd=tmp_path).returncode == 0
    (good).write_text("id,name\n1,a\n2,b\n3,c\n")
    (tmp_path / "drain.yaml").write_text(
        "name: drain\ntopic: mixed\nsink: {connector: jsonl, path: out/}\n"
        "errors: {tolerance: all}\n"
    )
    ran = omconnect("run", "drain.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(x) for p in sorted((tmp_path / "out").glob("*.jsonl")) for x in p.open()]
    assert [row["id"] for row in lines] == [1, 2]

    dead = tail_topic("mixed.dlq", tmp_path)
    assert [item["value"] for item in dead][1] == "plain text"
    assert {item["headers"]["omconnect.error.stage"] for item in dead} == {"convert"}
    where = [json.loads(item["headers"]["omconnect.error.position"]) for item in dead]
    assert [(w["topic"], w["offset"]) for w in where] == [("mixed", 2), ("mixed", 3)]
