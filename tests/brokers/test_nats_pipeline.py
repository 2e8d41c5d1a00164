"""A real pipeline through NATS JetStream: ``omconnect run --once`` of a CSV file through
``broker: nats://...`` into a JSON Lines sink, then the offsets and topics commands on it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.nats_server import nats_test_url
from tests.support.omconnect_process import omconnect

ROWS = [{"id": n, "name": f"item {n}", "amount": n * 1.5} for n in range(1, 201)]


def _rows_written(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("**/*.jsonl")) for line in path.open()]


def test_a_csv_file_goes_through_nats_into_a_sink(tmp_path: Path) -> None:
    url = nats_test_url()
    (tmp_path / "in.csv").write_text(
        "id,name,amount\n" + "".join(f"{r['id']},{r['name']},{r['amount']}\n" for r in ROWS)
    )
    (tmp_path / "p.yaml").write_text(
        f"name: p\nbroker: {url}\nsource: {{connector: csv, path: in.csv}}\ntopic: items\n"
        "sink: {connector: jsonl, path: out/}\n"
    )
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    written = _rows_written(tmp_path / "out")
    assert sorted(r["id"] for r in written) == [r["id"] for r in ROWS]
    assert {r["id"]: (r["name"], r["amount"]) for r in written} == {
        r["id"]: (r["name"], r["amount"]) for r in ROWS
    }

    listed = [
        json.loads(line)
        for line in omconnect("offsets", "list", "p.yaml", cwd=tmp_path).stdout.splitlines()
    ]
    assert [x for x in listed if x["kind"] == "sink"] == [
        {"kind": "sink", "partition": {"topic": "items", "partition": 0}, "offset": {"offset": 200}}
    ]
    topics = omconnect("topics", "list", "--broker", url, cwd=tmp_path)
    assert topics.returncode == 0, topics.stderr
    assert any(line.split() == ["items", "1", "200"] for line in topics.stdout.splitlines())
    tail = omconnect(
        "topics", "tail", "items", "--broker", url, "--from-beginning", "--no-follow", "--max",
        "3", "--format", "json", cwd=tmp_path,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    tailed = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [(m["partition"], m["offset"]) for m in tailed] == [(0, 0), (0, 1), (0, 2)]

    # Nothing new: a second run delivers nothing more.
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(_rows_written(tmp_path / "out")) == len(ROWS)

    # From scratch: the source publishes every row again, with the same message ids, which
    # the stream's duplicate window drops; the sink (rewound to 0) reads the topic again.
    reset = omconnect("offsets", "reset", "p.yaml", "--sink", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "rewound the sink's consumer group" in reset.stdout
    rerun = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    topics = omconnect("topics", "list", "--broker", url, cwd=tmp_path)
    assert any(line.split() == ["items", "1", "200"] for line in topics.stdout.splitlines()), (
        "re-published rows were stored again"
    )
    assert "written=200" in rerun.stderr, rerun.stderr
    rewritten = _rows_written(tmp_path / "out")
    assert {r["id"] for r in rewritten} == {r["id"] for r in ROWS}
