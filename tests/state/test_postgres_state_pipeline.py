"""``omconnect`` with ``state: postgresql://...``, as a user types it: a pipeline runs and
resumes from the offsets it stored in Postgres, a second runner of it is refused while the
first runs, ``omconnect offsets`` reads and changes its positions there, and an unreachable
state is one line on stderr. The password in the URL never shows."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import psycopg

from omconnect.runtime.state import LOCK_CHECK_SECONDS
from tests.state.test_postgres_state import CANARY, free_port
from tests.support.omconnect_process import omconnect, spawn_omconnect
from tests.support.sql_databases import POSTGRES_URL

PIPELINE = """name: p
state: {state}
source: {{connector: csv, path: in.csv}}
topic: items
sink: {{connector: jsonl, path: out/}}
"""


def with_password(state: str) -> str:
    """``state`` with a password in its URL (the server trusts this machine: any one works)."""
    return state.replace("postgresql://postgres@", f"postgresql://postgres:{CANARY}@")


def sink_rows(tmp_path: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((tmp_path / "out").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def items_on_topic(tmp_path: Path) -> str:
    topics = omconnect("topics", "list", cwd=tmp_path)
    return next(line.split()[2] for line in topics.stdout.splitlines() if line.startswith("items"))


def wait_for_lock_holder(state: str, timeout: float = 30) -> None:
    """Until a runner of pipeline ``p`` holds its lock (its holder record is written)."""
    schema = state.rsplit("schema=", 1)[1]
    deadline = time.monotonic() + timeout
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        while time.monotonic() < deadline:
            found = connection.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'run_lock_holders'",
                [schema],
            ).fetchone()
            if (
                found
                and connection.execute(
                    f'SELECT 1 FROM "{schema}".run_lock_holders WHERE pipeline = %s', ["p"]
                ).fetchone()
            ):
                return
            time.sleep(0.1)
    raise AssertionError("the first runner never took the pipeline's lock")


def test_a_pipeline_resumes_from_offsets_stored_in_postgres(
    tmp_path: Path, postgres_state: str
) -> None:
    state = with_password(postgres_state)
    (tmp_path / "in.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (tmp_path / "p.yaml").write_text(PIPELINE.format(state=state))
    outputs = []

    first = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    outputs.append(first)
    assert first.returncode == 0, first.stderr
    assert [row["id"] for row in sink_rows(tmp_path)] == [1, 2, 3]
    local = {path.name for path in (tmp_path / ".omconnect").iterdir()}
    assert not local & {"offsets.sqlite", "registry.sqlite", "locks"}, local

    listed = omconnect("offsets", "list", "p.yaml", cwd=tmp_path)
    outputs.append(listed)
    [source] = [x for x in map(json.loads, listed.stdout.splitlines()) if x["kind"] == "source"]
    assert source["partition"] == {"file": "in.csv"} and source["offset"]["row"] == 3

    with (tmp_path / "in.csv").open("a") as csv:
        csv.write("4,d\n5,e\n")
    second = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    outputs.append(second)
    assert second.returncode == 0, second.stderr
    assert items_on_topic(tmp_path) == "5", "the second run published only the new rows"
    assert [row["id"] for row in sink_rows(tmp_path)] == [1, 2, 3, 4, 5]

    exported = omconnect("offsets", "export", "p.yaml", cwd=tmp_path)
    (tmp_path / "offsets.jsonl").write_text(exported.stdout)
    reset = omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
    assert "removed 1 source position" in reset.stdout
    imported = omconnect("offsets", "import", "p.yaml", "offsets.jsonl", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert omconnect("offsets", "export", "p.yaml", cwd=tmp_path).stdout == exported.stdout
    outputs += [exported, reset, imported]
    for result in outputs:
        assert CANARY not in result.stdout + result.stderr


def test_a_second_runner_of_the_pipeline_is_refused(tmp_path: Path, postgres_state: str) -> None:
    state = with_password(postgres_state)
    (tmp_path / "in.csv").write_text("id,name\n1,a\n")
    (tmp_path / "p.yaml").write_text(PIPELINE.format(state=state))
    running = spawn_omconnect("run", "p.yaml", cwd=tmp_path)  # runs until stopped
    try:
        wait_for_lock_holder(postgres_state)
        refused = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr.strip().startswith(
            f"pipeline 'p' is already running (pid {running.pid} on host "
        )
        assert "'omconnect run'" in refused.stderr and "stop it first" in refused.stderr
        moved = omconnect(
            "offsets", "set", "p.yaml", "--partition", '{"file": "in.csv"}', "--offset",
            '{"row": 0}', cwd=tmp_path,
        )  # fmt: skip
        assert moved.returncode == 1
        assert "stop it before changing its offsets" in moved.stderr
        assert CANARY not in refused.stderr + moved.stderr
    finally:
        running.send_signal(signal.SIGINT)
        _, stderr = running.communicate(timeout=60)
    assert running.returncode == 0, stderr
    assert CANARY not in stderr
    after = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert after.returncode == 0, after.stderr


def test_a_run_whose_lock_session_ends_stops_and_another_may_run(
    tmp_path: Path, postgres_state: str
) -> None:
    """The server ends the session holding the run lock (as a restart or an administrator
    would): the running pipeline notices within the lock check, stops with one line saying
    what happened (nonzero, without the password), and a new runner takes the lock."""
    state = with_password(postgres_state)
    (tmp_path / "in.csv").write_text("id,name\n1,a\n")
    (tmp_path / "p.yaml").write_text(PIPELINE.format(state=state))
    running = spawn_omconnect("run", "p.yaml", cwd=tmp_path)  # runs until stopped
    try:
        wait_for_lock_holder(postgres_state)
        schema = postgres_state.rsplit("schema=", 1)[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            [(ended,)] = connection.execute(
                f'SELECT count(pg_terminate_backend(backend_pid)) FROM "{schema}".run_lock_holders '
                "WHERE pipeline = 'p'"
            ).fetchall()
        assert ended == 1
        _, stderr = running.communicate(timeout=LOCK_CHECK_SECONDS + 30)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == 1, stderr
    assert "pipeline 'p' lost its run lock" in stderr, stderr
    assert "Traceback" not in stderr and CANARY not in stderr
    after = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert after.returncode == 0, after.stderr


def test_an_unreachable_state_is_one_line_on_stderr(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "in.csv").write_text("id\n1\n")
    state = f"postgresql://postgres:{CANARY}@127.0.0.1:{port}/test"
    (tmp_path / "p.yaml").write_text(PIPELINE.format(state=state))
    for command in (["run", "p.yaml", "--once"], ["offsets", "list", "p.yaml"]):
        result = omconnect(*command, cwd=tmp_path)
        assert result.returncode == 1, command
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"state: cannot reach PostgreSQL at 127.0.0.1:{port}, database test" in lines[0]
        assert "Traceback" not in result.stderr
        assert CANARY not in result.stdout + result.stderr


def test_serve_with_an_unreachable_state_says_so_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "pipelines").mkdir()
    state = f"postgresql://postgres:{CANARY}@127.0.0.1:{port}/test"
    result = omconnect("serve", "pipelines", "--port", "0", "--state", state, cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}, database test" in result.stderr
    assert CANARY not in result.stdout + result.stderr
