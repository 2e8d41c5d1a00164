"""Commands that fail say what is wrong in one line and exit non-zero, without a traceback;
read-only commands create nothing; positions are checked, and shown with secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.omconnect_process import omconnect

SECRET = "hunter2-canary-7Hq"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], exit_code: int, *expected: str
) -> None:
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """A pipeline ``p.yaml`` reading ``in/${DB_PASSWORD}/*.csv``, run once."""
    folder = tmp_path / "in" / SECRET
    folder.mkdir(parents=True)
    write(folder / "a.csv", "id,name\n1,a\n2,b\n3,c\n")
    write(
        tmp_path / "p.yaml",
        "name: p\nsource: {connector: csv, path: 'in/${DB_PASSWORD}/*.csv'}\n"
        "sink: {connector: jsonl, path: out/}\n",
    )
    result = omconnect("run", "p.yaml", "--once", cwd=tmp_path, env={"DB_PASSWORD": SECRET})
    assert result.returncode == 0, result.stderr
    return tmp_path


def offsets(cwd: Path, *args: str) -> list[dict[str, Any]]:
    result = omconnect("offsets", *args, cwd=cwd, env={"DB_PASSWORD": SECRET})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_offsets_list_and_export_mask_a_secret_in_a_path(ran: Path) -> None:
    listed = offsets(ran, "list", "p.yaml")
    assert listed[0]["partition"] == {"file": "in/***/a.csv"}
    exported = offsets(ran, "export", "p.yaml")
    assert exported[0]["partition"] == {"file": "in/***/a.csv"}
    assert exported[0]["offset"]["row"] == 3


def test_a_masked_position_fed_back_gets_its_secret_back(ran: Path) -> None:
    env = {"DB_PASSWORD": SECRET}
    write(ran / "export.jsonl", omconnect("offsets", "export", "p.yaml", cwd=ran, env=env).stdout)
    assert SECRET not in (ran / "export.jsonl").read_text()
    assert omconnect("offsets", "reset", "p.yaml", cwd=ran, env=env).returncode == 0
    imported = omconnect("offsets", "import", "p.yaml", "export.jsonl", cwd=ran, env=env)
    assert imported.returncode == 0, imported.stderr
    # The same partition as the run stored: another run reads nothing again.
    again = omconnect("run", "p.yaml", "--once", cwd=ran, env=env)
    assert again.returncode == 0, again.stderr
    assert "read=0" in again.stderr
    setting = omconnect(
        "offsets", "set", "p.yaml", "--partition", '{"file": "in/***/a.csv"}',
        "--offset", '{"row": 1}', cwd=ran, env=env,
    )  # fmt: skip
    assert setting.returncode == 0, setting.stderr
    assert [entry["offset"] for entry in offsets(ran, "list", "p.yaml")[:1]] == [{"row": 1}]


@pytest.mark.parametrize("offset", ['{"row": "abc"}', '{"row": -5}'])
def test_offsets_set_refuses_a_position_the_source_cannot_use(ran: Path, offset: str) -> None:
    before = offsets(ran, "list", "p.yaml")
    result = omconnect(
        "offsets", "set", "p.yaml", "--partition", '{"file": "in/***/a.csv"}',
        "--offset", offset, cwd=ran, env={"DB_PASSWORD": SECRET},
    )  # fmt: skip
    assert_clean_failure(result, 2, "row must be a whole number", "csv source cannot resume")
    assert offsets(ran, "list", "p.yaml") == before


def test_offsets_import_refuses_a_position_the_source_cannot_use(ran: Path) -> None:
    before = offsets(ran, "list", "p.yaml")
    write(
        ran / "bad.jsonl",
        '{"partition": {"file": "x.csv"}, "offset": {"row": 1}}\n'
        '{"partition": {"file": "y.csv"}, "offset": {"row": "abc"}}\n',
    )
    result = omconnect(
        "offsets", "import", "p.yaml", "bad.jsonl", cwd=ran, env={"DB_PASSWORD": SECRET}
    )
    assert_clean_failure(result, 2, "offset row 1: offset: row must be a whole number")
    assert offsets(ran, "list", "p.yaml") == before


def test_offsets_reset_with_a_partition_that_is_not_json(ran: Path) -> None:
    result = omconnect(
        "offsets", "reset", "p.yaml", "--partition", "{bad", cwd=ran, env={"DB_PASSWORD": SECRET}
    )
    assert_clean_failure(result, 2, "--partition must be a JSON object")


def test_topics_tail_of_a_missing_topic_says_so(ran: Path) -> None:
    for extra in ([], ["--no-follow"]):
        result = omconnect("topics", "tail", "nosuchtopic", *extra, cwd=ran, timeout=30)
        assert_clean_failure(result, 1, "topic 'nosuchtopic' does not exist")
    shown = omconnect("topics", "tail", "p", "--from-beginning", "--no-follow", cwd=ran)
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 3


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    listed = omconnect("topics", "list", "--broker", f"embedded://{missing}", cwd=tmp_path)
    assert_clean_failure(listed, 1, "there is no embedded broker in")
    tailed = omconnect("topics", "tail", "t", "--broker", "embedded://nope", cwd=tmp_path)
    assert_clean_failure(tailed, 1, "there is no embedded broker in nope")
    write(tmp_path / "in.csv", "id\n1\n")
    write(
        tmp_path / "q.yaml",
        "name: q\nsource: {connector: csv, path: in.csv}\nsink: {connector: jsonl, path: o/}\n",
    )
    for action in ("list", "export"):
        result = omconnect("offsets", action, "q.yaml", cwd=tmp_path)
        assert result.returncode == 0 and result.stdout == "", result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "q.yaml"]


def test_a_broker_scheme_that_is_not_known(tmp_path: Path) -> None:
    result = omconnect("topics", "list", "--broker", f"pulsar://u:{SECRET}@h:6650", cwd=tmp_path)
    assert_clean_failure(result, 2, "unknown broker scheme pulsar:// (known: ")
    assert SECRET not in result.stderr
    debug = omconnect(
        "--log-level", "DEBUG", "topics", "list", "--broker", "pulsar://h:6650", cwd=tmp_path
    )
    assert debug.returncode == 2 and "Traceback" in debug.stderr


@pytest.mark.parametrize(
    "url",
    ["kafka://127.0.0.1:1", f"redis://:{SECRET}@127.0.0.1:1", f"nats://u:{SECRET}@127.0.0.1:1"],
)
def test_a_broker_that_cannot_be_reached_fails_in_seconds_saying_what_to_check(
    tmp_path: Path, url: str
) -> None:
    result = omconnect("topics", "list", "--broker", url, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "127.0.0.1:1" in last and "check" in last, result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stderr


def test_serve_with_a_port_out_of_range(tmp_path: Path) -> None:
    result = omconnect("serve", ".", "--port", "80000", cwd=tmp_path)
    assert_clean_failure(result, 2, "'80000' is not a port: expected 0 to 65535")


def test_an_unusable_state_directory(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "id\n1\n")
    write(tmp_path / "not-a-dir", "x")
    write(
        tmp_path / "f.yaml", "name: f\nstate: not-a-dir\nsource: {connector: csv, path: in.csv}\n"
    )
    result = omconnect("offsets", "list", "f.yaml", cwd=tmp_path)
    assert_clean_failure(result, 1, "the state directory not-a-dir is a file, not a directory")
    (tmp_path / "junk").mkdir()
    write(tmp_path / "junk" / "offsets.sqlite", "not a database, just text " * 20)
    write(tmp_path / "j.yaml", "name: j\nstate: junk\nsource: {connector: csv, path: in.csv}\n")
    for args in (["list", "j.yaml"], ["export", "j.yaml"], ["reset", "j.yaml"]):
        result = omconnect("offsets", *args, cwd=tmp_path)
        assert_clean_failure(result, 1, "junk/offsets.sqlite is not an offset store")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_says_the_disk_is_full(tmp_path: Path) -> None:
    # A real ENOSPC: the offset store's file is /dev/full, where every write fails so.
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "offsets.sqlite").symlink_to("/dev/full")
    write(tmp_path / "in.csv", "id\n1\n")
    write(tmp_path / "d.yaml", "name: d\nstate: full\nsource: {connector: csv, path: in.csv}\n")
    for args in (
        ["list", "d.yaml"],
        ["set", "d.yaml", "--partition", '{"file": "in.csv"}', "--offset", '{"row": 1}'],
    ):
        result = omconnect("offsets", *args, cwd=tmp_path)
        assert_clean_failure(result, 1, "the disk holding full/offsets.sqlite is full")
