"""``omconnect serve`` as a command: refusing a bad folder, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from omconnect.runtime.cli import serve_cmd
from tests.support.served_worker import (
    ServeProcess,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)


def test_an_invalid_folder_refuses_to_start_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    write_pipeline(folder, "good", tmp_path, tmp_path / "in")
    (folder / "typo.yaml").write_text(
        "name: typo\nsource:\n  connector: csvv\n  path: x.csv\nsink:\n  connector: parquet\n"
        "  path: out/\n"
    )
    (folder / "cron.yml").write_text(
        'name: cron\nsource: {connector: csv, path: x.csv}\nschedule: "61 * * * *"\n'
    )

    code = serve_cmd.main([str(folder), "--port", "0"])

    assert code == 2
    err = capsys.readouterr().err
    assert f"{folder / 'typo.yaml'}:3: source.connector: " in err
    assert (
        f'{folder / "cron.yml"}:3: schedule: invalid cron expression "61 * * * *": minute '
        '"61": 61 is out of range 0-59'
    ) in err
    assert "not starting" in err
    assert "Traceback" not in err


def test_a_missing_folder_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_cmd.main([str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "the pipelines folder does not exist" in capsys.readouterr().err


def test_sigterm_stops_every_pipeline_cleanly_and_exits_0(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(folder, "orders", tmp_path, tmp_path / "in")
    write_pipeline(folder, "batch", tmp_path, tmp_path / "in", schedule="@hourly")
    with ServeProcess(folder, tmp_path) as served:
        with urllib.request.urlopen(served.url + "/health", timeout=5) as response:
            assert json.load(response) == {"status": "ok"}
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3], what="delivery")

        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        code = served.process.wait(timeout=10)
        rest = served.output()
    assert code == 0, rest
    assert time.monotonic() - started < 5
    assert "pipeline orders: run stopped" in rest
    assert "Traceback" not in rest
