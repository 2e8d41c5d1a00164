"""A real pipeline through MQTT (Mosquitto): ``omconnect run --once`` of CSV files through
``broker: mqtt://...`` into a JSON Lines sink, what another pipeline publishes to the topic
while it is stopped, and the offsets and topics commands on it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.support.mosquitto_server import mqtt_test_url
from tests.support.omconnect_process import omconnect


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


def test_csv_files_go_through_mqtt_into_a_sink(tmp_path: Path) -> None:
    url = mqtt_test_url()
    _csv(tmp_path / "in" / "a.csv", range(1, 201))
    _pipeline(tmp_path / "p.yaml", "p", url, "in/*.csv", sink=True)
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert _ids_written(tmp_path / "out") == Counter(range(1, 201))

    # A queue has no offsets: the sink's position is what its group's session still holds.
    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["kind"] for line in listed.stdout.splitlines()] == ["source"]
    topics = omconnect("topics", "list", "--broker", url, cwd=tmp_path)
    assert topics.returncode == 0, topics.stderr
    assert ["items", "1", "0"] in [line.split() for line in topics.stdout.splitlines()[1:]]

    # Nothing new: a second run delivers nothing more.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "written=0" in again.stderr, again.stderr

    # While p is stopped, another pipeline publishes to its topic: the session p's sink left
    # parked, subscribed, keeps those messages, and p's next run writes them beside the rows
    # of its own new file.
    _csv(tmp_path / "other" / "in" / "q.csv", range(1001, 1051))
    _pipeline(tmp_path / "q.yaml", "q", url, "other/in/*.csv", sink=False)
    published = omconnect("run", "q.yaml", "--once", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    _csv(tmp_path / "in" / "b.csv", range(201, 251))
    rerun = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "written=100" in rerun.stderr, rerun.stderr
    assert _ids_written(tmp_path / "out") == Counter([*range(1, 251), *range(1001, 1051)])
