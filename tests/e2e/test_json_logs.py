"""``omconnect run`` logs one JSON object per line when stderr is not a terminal: the line
names its pipeline, secrets stay masked, and ``--log-format text`` gives the plain lines."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest

from omconnect.runtime.cli.logging_setup import setup_logging
from tests.support.omconnect_process import omconnect

CANARY = "s3cr3t-json-canary-71c"


def _pipeline(tmp_path: Path) -> None:
    (tmp_path / "password.txt").write_text(CANARY + "\n")
    # A secret (read with ${file:}) that is also a row's bad value: the dead letter warning
    # quotes the value, and must mask it.
    (tmp_path / "orders.csv").write_text(f"order_id,amount\n1,10\n2,{CANARY}\n")
    (tmp_path / "orders.yaml").write_text(
        "name: orders\n"
        "source: {connector: csv, path: orders.csv, columns: {amount: string}}\n"
        "transforms: [{type: cast, fields: {amount: 'decimal(10,2)'}}]\n"
        "sink: {connector: parquet, path: 'out/${file:password.txt}/'}\n"
        "errors: {tolerance: all}\n"
    )


def test_run_logs_json_lines_naming_the_pipeline(tmp_path: Path) -> None:
    _pipeline(tmp_path)

    # auto, the default: stderr is a pipe here (the suite itself asks for text, tests/conftest.py)
    ran = omconnect(
        "--log-level", "DEBUG", "run", "orders.yaml", "--once", cwd=tmp_path,
        env={"OMCONNECT_LOG_FORMAT": "auto"},
    )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    assert CANARY not in ran.stderr
    lines = [json.loads(line) for line in ran.stderr.splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
        assert line["ts"].endswith("+00:00")
    summaries = [line for line in lines if line["message"].startswith("pipeline=orders read=")]
    assert len(summaries) == 1, lines
    assert summaries[0]["pipeline"] == "orders"
    assert summaries[0]["level"] == "INFO" and summaries[0]["logger"] == "omconnect.run"
    dead_letters = [line for line in lines if "record(s) to orders.dlq" in line["message"]]
    assert dead_letters, lines
    assert dead_letters[0]["pipeline"] == "orders" and dead_letters[0]["task"] == "source-0"
    assert "***" in dead_letters[0]["message"]


def test_log_format_text_keeps_the_plain_lines(tmp_path: Path) -> None:
    _pipeline(tmp_path)

    ran = omconnect("--log-format", "text", "run", "orders.yaml", "--once", cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    assert CANARY not in ran.stderr
    assert " INFO omconnect.run: pipeline=orders read=" in ran.stderr
    assert not ran.stderr.lstrip().startswith("{")


def test_lines_go_to_stderr_as_it_is_when_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that replaces stderr after logging was set up (a host embedding the CLI, a
    test capturing output) gets the lines; none go to the stream it replaced, which may be
    closed by then."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    before, after = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", before)
    setup_logging("INFO", log_format="text")
    monkeypatch.setattr(sys, "stderr", after)
    before.close()

    logging.getLogger("omconnect.test").info("after the swap")

    assert "omconnect.test: after the swap" in after.getvalue()
