"""Re-reading the pipelines folder under ``serve``: added, changed and removed files applied
without touching the other pipelines, an invalid change keeping the pipeline as it was, and
the real command reloading on its own (a changed file) and on SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.served_worker import (
    ServedWorker,
    ServeProcess,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)


def test_added_changed_and_removed_files_leave_the_others_running(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(folder, "steady", tmp_path, tmp_path / "in")
    changing = write_pipeline(folder, "changing", tmp_path, tmp_path / "in")
    write_pipeline(folder, "leaving", tmp_path, tmp_path / "in")

    with ServedWorker(folder) as worker:
        for name in ("steady", "changing", "leaving"):
            wait_until(lambda n=name: sink_ids(tmp_path / "out" / n) == [1, 2, 3], what=name)

        write_pipeline(folder, "arriving", tmp_path, tmp_path / "in")
        changed_text = changing.read_text().replace("out/changing", "out/changed")
        changing.write_text(changed_text)
        (folder / "leaving.yaml").unlink()
        changes = worker.reload()

        assert [loaded.config.name for loaded in changes.added] == ["arriving"]
        assert [loaded.config.name for loaded in changes.changed] == ["changing"]
        assert changes.removed == ["leaving"]
        wait_until(lambda: sink_ids(tmp_path / "out" / "arriving") == [1, 2, 3], what="added")
        # The changed pipeline runs with its new sink (its source positions are kept).
        write_orders(tmp_path / "in" / "b.csv", range(4, 6))
        wait_until(lambda: sink_ids(tmp_path / "out" / "changed") == [4, 5], what="new config")
        assert worker.request("GET", "/pipelines/leaving/status")[0] == 404
        steady = worker.status("steady")
        assert steady["state"] == "RUNNING"
        assert len(steady["runs"]) == 1 and steady["restarts"] == 0, "steady was restarted"
        wait_until(lambda: sink_ids(tmp_path / "out" / "steady") == [1, 2, 3, 4, 5], what="on")

        assert not worker.reload(), "a re-read of an unchanged folder changed something"
        assert len(worker.status("steady")["runs"]) == 1


def test_a_file_that_no_longer_validates_keeps_its_pipeline_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    path = write_pipeline(folder, "orders", tmp_path, tmp_path / "in")

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3], what="delivery")
        good = path.read_text()
        path.write_text(good.replace("connector: csv", "connector: cvs"))
        (folder / "broken.yaml").write_text("name: broken\nsource: {connector: csv}\n")

        changes = worker.reload()

        assert not changes
        assert f"{path}:5: source.connector: " in changes.kept["orders"]
        assert str(folder / "broken.yaml") in changes.refused
        assert worker.supervisor.config_problems == changes.kept
        status = worker.status("orders")
        assert status["state"] == "RUNNING" and len(status["runs"]) == 1
        write_orders(tmp_path / "in" / "b.csv", range(4, 6))
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3, 4, 5], what="on")

        path.write_text(good)  # fixed as it was: nothing to restart, the problem is gone
        assert not worker.reload()
        assert worker.supervisor.config_problems == {}
        assert len(worker.status("orders")["runs"]) == 1


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_serve_reloads_a_changed_folder_and_on_sighup(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(folder, "steady", tmp_path, tmp_path / "in")
    token = "reload-test-token"
    options = ("--state", str(tmp_path / "state"))
    env = {"OMCONNECT_API_TOKEN": token, "OMCONNECT_API_TOKEN_FILE": None}

    with ServeProcess(folder, tmp_path, *options, env=env) as served:
        wait_until(lambda: sink_ids(tmp_path / "out" / "steady") == [1, 2, 3], what="steady")

        # Polled: a new file starts its pipeline within a couple of seconds.
        write_pipeline(folder, "polled", tmp_path, tmp_path / "in")
        wait_until(lambda: sink_ids(tmp_path / "out" / "polled") == [1, 2, 3], what="polled")

        # SIGHUP: re-read at once. Written with the old modification time and size, so that
        # only the signal can tell serve about it.
        polled = folder / "polled.yaml"
        before = polled.stat()
        renamed = polled.read_text().replace("out/polled", "out/hupped")
        polled.write_text(renamed)
        assert polled.stat().st_size == before.st_size
        os.utime(polled, ns=(before.st_atime_ns, before.st_mtime_ns))
        served.process.send_signal(signal.SIGHUP)
        write_orders(tmp_path / "in" / "b.csv", range(4, 6))  # the new sink gets what is new
        wait_until(lambda: sink_ids(tmp_path / "out" / "hupped") == [4, 5], what="SIGHUP")

        steady = _get(f"{served.url}/pipelines/steady/status", token)
        assert steady["state"] == "RUNNING"
        assert len(steady["runs"]) == 1 and steady["restarts"] == 0

        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=15) == 0
