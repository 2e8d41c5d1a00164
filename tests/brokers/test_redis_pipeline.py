"""A real pipeline through Redis Streams: ``omconnect run --once`` of a CSV file through
``broker: redis://...`` into a JSON Lines sink, then the offsets and topics commands on it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.omconnect_process import omconnect
from tests.support.redis_server import redis_test_url

ROWS = [{"id": n, "name": f"item {n}", "amount": n * 1.5} for n in range(1, 201)]


def _rows_written(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("**/*.jsonl")) for line in path.open()]


def _topic_line(url: str, cwd: Path) -> list[str]:
    topics = omconnect("topics", "list", "--broker", url, cwd=cwd)
    assert topics.returncode == 0, topics.stderr
    (line,) = [line.split() for line in topics.stdout.splitlines() if line.startswith("items ")]
    return line


def test_a_csv_file_goes_through_redis_into_a_sink(tmp_path: Path) -> None:
    url = redis_test_url()
    (tmp_path / "in.csv").write_text(
        "id,name,amount\n" + "".join(f"{r['id']},{r['name']},{r['amount']}\n" for r in ROWS)
    )
    (tmp_path / "p.yaml").write_text(
        f"name: p\nbroker: '{url}'\nsource: {{connector: csv, path: in.csv}}\ntopic: items\n"
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
    assert _topic_line(url, tmp_path) == ["items", "1", "200"]
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
    assert len(_rows_written(tmp_path / "out")) == len(ROWS)

    # From scratch: the source publishes every row again (Redis keeps no message ids to drop
    # them by, so the topic holds them twice) and the sink, rewound to 0, reads it all again.
    reset = omconnect("offsets", "reset", "p.yaml", "--sink", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "rewound the sink's consumer group" in reset.stdout
    rerun = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert _topic_line(url, tmp_path) == ["items", "1", "400"]
    assert "written=400" in rerun.stderr, rerun.stderr
    rewritten = _rows_written(tmp_path / "out")
    assert {r["id"] for r in rewritten} == {r["id"] for r in ROWS}
