"""The management API over real HTTP: pipelines created, replaced, validated and deleted from
YAML or JSON; stop, run now; offsets changed only while stopped; connector plugins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.served_worker import (
    ServedWorker,
    sink_ids,
    wait_until,
    write_orders,
    write_pipeline,
)

YAML = "application/yaml"


def pipeline_text(tmp_path: Path, name: str, source: Path, **options: Any) -> str:
    """The text of a CSV -> parquet pipeline file (``write_pipeline``'s), not in the folder."""
    return write_pipeline(tmp_path / "drafts", name, tmp_path, source, **options).read_text()


def orders_folder(tmp_path: Path, ids: range) -> Path:
    """A pipelines folder holding ``orders``: ``in/a.csv`` with ``ids`` -> ``out/orders``."""
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", ids)
    write_pipeline(folder, "orders", tmp_path, tmp_path / "in")
    return folder


def folder_files(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


def test_create_from_yaml_runs_and_delivers_without_touching_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_orders(tmp_path / "new" / "b.csv", range(100, 103))
    write_pipeline(folder, "orders", tmp_path, tmp_path / "in")

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 3], what="orders")
        runs_before = worker.status("orders")["runs"]

        text = pipeline_text(tmp_path, "fresh", tmp_path / "new")
        created = worker.send("POST", "/pipelines", text, 201, YAML)
        assert created["name"] == "fresh" and created["file"] == "fresh.yaml"
        assert created["config"]["source"]["connector"] == "csv"
        assert (folder / "fresh.yaml").read_text() == text
        wait_until(lambda: sink_ids(tmp_path / "out" / "fresh") == [100, 101, 102], what="fresh")
        assert worker.status("fresh")["state"] == "RUNNING"
        assert worker.json("GET", "/pipelines") == ["orders", "fresh"]
        assert worker.status("orders")["runs"] == runs_before  # not restarted

        again = worker.send("POST", "/pipelines", text, 409, YAML)
        assert "already exists" in again["message"]
    assert folder_files(folder) == ["fresh.yaml", "orders.yaml"]


def test_create_from_json_writes_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    document = yaml.safe_load(pipeline_text(tmp_path, "from-json", tmp_path / "in"))

    with ServedWorker(folder) as worker:
        worker.send("POST", "/pipelines", document, 201)
        assert yaml.safe_load((folder / "from-json.yaml").read_text()) == document
        wait_until(lambda: sink_ids(tmp_path / "out" / "from-json") == [1, 2], what="delivery")


def test_invalid_pipelines_get_422_with_file_line_problems_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    secret = "s3cr3t-pa55word"
    broken = pipeline_text(tmp_path, "broken", tmp_path / "in").replace(
        "  key: [order_id]\n", f"  key: [order_id]\n  password: {secret}\n  bogus_option: 1\n"
    )

    with ServedWorker(folder) as worker:
        answer = worker.send("PUT", "/pipelines/broken/config", broken, 422, YAML)
        assert answer["error_code"] == 422 and answer["error_count"] >= 1
        texts = [problem["text"] for problem in answer["problems"]]
        assert any(text.startswith("broken.yaml:") and "bogus_option" in text for text in texts)
        assert all(problem["line"] for problem in answer["problems"])
        assert secret not in json.dumps(answer)

        syntax = worker.send("POST", "/pipelines", "name: [unclosed\n", 422, YAML)
        assert syntax["problems"][0]["key"] == "(yaml)"
        assert syntax["problems"][0]["text"].startswith("body:")

        not_json = worker.send("POST", "/pipelines", '{"name": ', 422, "application/json")
        assert not_json["problems"][0]["key"] == "(json)"

        json_answer = worker.send("POST", "/pipelines", {"name": "x", "source": {}}, 422)
        assert json_answer["problems"] and "Traceback" not in json.dumps(json_answer)

        other_name = pipeline_text(tmp_path, "other", tmp_path / "in")
        mismatch = worker.send("PUT", "/pipelines/wanted/config", other_name, 422, YAML)
        assert mismatch["problems"][0]["key"] == "name"
        assert mismatch["problems"][0]["text"].startswith("wanted.yaml:1: name:")

        bad_name = worker.send("PUT", "/pipelines/..evil/config", other_name, 400, YAML)
        assert "pipeline name" in bad_name["message"]

        status, _, _ = worker.request(
            "POST", "/pipelines", b"name: x", {"Content-Type": "text/plain"}
        )
        assert status == 415
    assert folder_files(folder) == ["orders.yaml"]


def test_validate_answers_error_count_without_writing(tmp_path: Path) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    good = pipeline_text(tmp_path, "checked", tmp_path / "in")

    with ServedWorker(folder) as worker:
        ok = worker.send("PUT", "/pipelines/config/validate", good, 200, YAML)
        assert ok == {"name": "checked", "error_count": 0, "configs": [], "problems": []}
        bad = worker.send("PUT", "/pipelines/config/validate", {"name": "x", "sinkk": {}}, 200)
        assert bad["error_count"] >= 1
        assert any(config["name"] == "sinkk" for config in bad["configs"])

        plugin = worker.send(
            "PUT", "/connector-plugins/csv/config/validate?kind=source", {"path": "x"}, 200
        )
        assert plugin["kind"] == "source" and plugin["error_count"] == 0
        wrong = worker.send(
            "PUT",
            "/connector-plugins/csv/config/validate?kind=source",
            "path: x\nbatch_size: lots\n",
            200,
            YAML,
        )
        assert wrong["error_count"] == 1
        assert wrong["problems"][0]["text"].startswith("body:2: batch_size:")
        ambiguous = worker.send("PUT", "/connector-plugins/csv/config/validate", {}, 400)
        assert "kind" in ambiguous["message"]
    assert folder_files(folder) == ["orders.yaml"]


def test_replace_restarts_with_the_new_config_and_delete_stops_and_removes(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 3))
    write_orders(tmp_path / "in2" / "a.csv", range(50, 52))  # a.csv: the same record name
    write_pipeline(folder, "orders", tmp_path, tmp_path / "in", pattern="a.csv")
    write_pipeline(folder, "bystander", tmp_path, tmp_path / "in", pattern="a.csv")

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2], what="first config")
        wait_until(lambda: worker.status("bystander")["counters"]["records_written"] == 2)
        bystander_runs = worker.status("bystander")["runs"]

        text = pipeline_text(tmp_path, "orders", tmp_path / "in2", pattern="a.csv")
        replaced = worker.send("PUT", "/pipelines/orders/config", text, 200, YAML)
        assert replaced["config"]["source"]["path"].endswith("in2/a.csv")
        assert (folder / "orders.yaml").read_text() == text
        wait_until(
            lambda: sink_ids(tmp_path / "out" / "orders") == [1, 2, 50, 51], what="new config"
        )
        assert worker.status("orders")["state"] == "RUNNING"
        assert worker.status("bystander")["runs"] == bystander_runs
        orders_runs = worker.status("orders")["runs"]
        worker.send("PUT", "/pipelines/orders/config", text, 200, YAML)  # unchanged
        assert worker.status("orders")["runs"] == orders_runs

        created = pipeline_text(tmp_path, "put-new", tmp_path / "in", pattern="b.csv")
        worker.send("PUT", "/pipelines/put-new/config", created, 201, YAML)
        assert worker.json("GET", "/pipelines/put-new/config")["name"] == "put-new"

        status, _, body = worker.request("DELETE", "/pipelines/orders")
        assert (status, body) == (204, b"")
        assert not (folder / "orders.yaml").exists()
        assert worker.json("GET", "/pipelines/orders/status", expect=404)["error_code"] == 404
        assert "orders" not in worker.json("GET", "/pipelines")
        assert worker.status("bystander")["runs"] == bystander_runs
        worker.json("DELETE", "/pipelines/orders", expect=404)

        # Its offsets were kept: created again, it delivers nothing twice.
        worker.send("POST", "/pipelines", text, 201, YAML)
        wait_until(lambda: worker.status("orders")["state"] == "RUNNING")
    assert sink_ids(tmp_path / "out" / "orders") == [1, 2, 50, 51]
    assert folder_files(folder) == ["bystander.yaml", "orders.yaml", "put-new.yaml"]


def test_offsets_change_only_while_stopped_and_the_pipeline_resumes_from_them(
    tmp_path: Path,
) -> None:
    folder = orders_folder(tmp_path, range(1, 6))
    out = tmp_path / "out" / "orders"

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 5], what="first delivery")
        source = wait_until(
            lambda: [
                e
                for e in worker.json("GET", "/pipelines/orders/offsets")["offsets"]
                if e["kind"] == "source"
            ],
            what="a committed source position",
        )
        partition = source[0]["partition"]
        patch = {"offsets": [{"partition": partition, "offset": {"row": 3}}]}

        refused = worker.send("PATCH", "/pipelines/orders/offsets", patch, 409)
        assert "STOPPED" in refused["message"]
        worker.json("DELETE", "/pipelines/orders/offsets", expect=409)

        assert worker.json("PUT", "/pipelines/orders/stop", expect=202)["name"] == "orders"
        wait_until(lambda: worker.status("orders")["state"] == "STOPPED", what="STOPPED")

        invalid = {"offsets": [{"partition": {"nope": 1}, "offset": {"row": 1}}]}
        rejected = worker.send("PATCH", "/pipelines/orders/offsets", invalid, 422)
        assert "cannot resume" in rejected["message"]

        changed = worker.send("PATCH", "/pipelines/orders/offsets", patch, 200)
        assert changed["changed"] == 1
        stored = worker.json("GET", "/pipelines/orders/offsets")["offsets"]
        assert {"kind": "source", "partition": partition, "offset": {"row": 3}} in stored

        worker.json("PUT", "/pipelines/orders/resume", expect=202)
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 4, 5, 5], what="rows after row 3 again")

        worker.json("PUT", "/pipelines/orders/stop", expect=202)
        wait_until(lambda: worker.status("orders")["state"] == "STOPPED", what="STOPPED again")
        reset = worker.json("DELETE", "/pipelines/orders/offsets")
        assert reset["removed"] == 1
        worker.json("PUT", "/pipelines/orders/resume", expect=202)
        wait_until(lambda: len(sink_ids(out)) == 12, what="everything again after the reset")


def test_run_now_runs_a_scheduled_pipeline_and_is_refused_while_it_runs(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(folder, "nightly", tmp_path, tmp_path / "in", schedule="0 3 1 1 *")
    write_pipeline(folder, "always", tmp_path, tmp_path / "in")

    with ServedWorker(folder) as worker:
        wait_until(lambda: worker.status("nightly")["state"] == "SCHEDULED")
        assert sink_ids(tmp_path / "out" / "nightly") == []
        worker.json("POST", "/pipelines/nightly/run", expect=202)
        wait_until(lambda: sink_ids(tmp_path / "out" / "nightly") == [1, 2, 3], what="the run")
        wait_until(lambda: worker.status("nightly")["state"] == "SCHEDULED")
        assert worker.status("nightly")["last_run"]["result"] == "succeeded"

        wait_until(lambda: worker.status("always")["state"] == "RUNNING")
        busy = worker.json("POST", "/pipelines/always/run", expect=409)
        assert "running" in busy["message"]
        worker.json("PUT", "/pipelines/nightly/pause", expect=202)
        assert "paused" in worker.json("POST", "/pipelines/nightly/run", expect=409)["message"]


def test_connector_plugins_are_listed_with_their_specs(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()

    with ServedWorker(folder) as worker:
        plugins = worker.json("GET", "/connector-plugins")
        assert {"source", "sink", "transform"} <= {plugin["kind"] for plugin in plugins}
        csv = [plugin for plugin in plugins if plugin["name"] == "csv"]
        assert {plugin["kind"] for plugin in csv} == {"source", "sink"}
        assert all(plugin["class"] and plugin["description"] for plugin in csv)
        sinks = worker.json("GET", "/connector-plugins?kind=sink")
        assert sinks and {plugin["kind"] for plugin in sinks} == {"sink"}

        described = worker.json("GET", "/connector-plugins/csv")
        source = next(plugin for plugin in described["plugins"] if plugin["kind"] == "source")
        assert "path" in source["spec"]["properties"]
        path = next(option for option in source["options"] if option["name"] == "path")
        assert path["required"] and path["type"]
        assert worker.json("GET", "/connector-plugins/nope", expect=404)["error_code"] == 404


def test_writes_stay_behind_the_access_guard(tmp_path: Path) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    text = pipeline_text(tmp_path, "sneaky", tmp_path / "in").encode()

    with ServedWorker(folder) as worker:
        for method, path in [
            ("POST", "/pipelines"),
            ("PUT", "/pipelines/sneaky/config"),
            ("DELETE", "/pipelines/orders"),
            ("PATCH", "/pipelines/orders/offsets"),
        ]:
            headers = {"Content-Type": YAML}
            assert worker.request(method, path, text, headers, authorized=False)[0] == 401
            cross_site = {**headers, "Origin": "http://evil.example"}
            assert worker.request(method, path, text, cross_site)[0] == 403
        yaml_elsewhere = worker.request(
            "PATCH", "/pipelines/orders/offsets", b"offsets: []", {"Content-Type": YAML}
        )
        assert yaml_elsewhere[0] == 415
        assert worker.status("orders")["state"] in ("RUNNING", "UNASSIGNED")
    assert folder_files(folder) == ["orders.yaml"]


def test_a_pipeline_without_a_broker_runs_stops_and_resumes_under_serve(tmp_path: Path) -> None:
    """``broker: none`` runs continuously: new files land, a stop delivers what was in flight
    and stores the source's positions (nothing again after the resume), and rewinding the
    sink is refused without touching those positions."""
    folder = tmp_path / "pipelines"
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    path = write_pipeline(folder, "direct", tmp_path, tmp_path / "in")
    text = path.read_text().replace(f"broker: embedded://{tmp_path / 'state'}", "broker: none")
    path.write_text(text.replace("format: avro\n", ""))
    out = tmp_path / "out" / "direct"

    with ServedWorker(folder) as worker:
        wait_until(lambda: sink_ids(out) == [1, 2, 3], what="the first file")
        write_orders(tmp_path / "in" / "b.csv", range(4, 6))
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 5], what="a file added later")

        worker.json("PUT", "/pipelines/direct/stop", expect=202)
        wait_until(lambda: worker.status("direct")["state"] == "STOPPED", what="STOPPED")
        refused = worker.json("DELETE", "/pipelines/direct/offsets?sink=true", expect=422)
        assert "resetting the source's positions" in refused["message"]
        offsets = worker.json("GET", "/pipelines/direct/offsets")["offsets"]
        assert sorted(e["kind"] for e in offsets) == ["sink", "source", "source"]

        write_orders(tmp_path / "in" / "c.csv", range(6, 7))
        worker.json("PUT", "/pipelines/direct/resume", expect=202)
        wait_until(lambda: sink_ids(out) == [1, 2, 3, 4, 5, 6], what="only the new file")
