"""Kafka Connect's body shapes over real HTTP: ``POST /pipelines`` takes ``{"name": ...,
"config": {...}}`` beside the pipeline file itself, ``PUT /pipelines/{name}/config`` a config
map without a name; problems keep their ``FILE:LINE: KEY`` form, with the lines of the body
as sent and the keys of the pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.serve.test_management_api import folder_files, orders_folder, pipeline_text
from tests.support.served_worker import ServedWorker, sink_ids, wait_until

YAML = "application/yaml"
JSON = "application/json"


def pipeline_config(tmp_path: Path, name: str, source: Path, **options: Any) -> dict[str, Any]:
    """The mapping of a CSV -> parquet pipeline, without its name."""
    config = yaml.safe_load(pipeline_text(tmp_path, name, source, **options))
    del config["name"]
    return dict(config)


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the first line of ``text`` holding ``fragment``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_post_takes_kafka_connects_name_and_config_and_the_pipeline_runs(
    tmp_path: Path,
) -> None:
    folder = orders_folder(tmp_path, range(1, 4))
    config = pipeline_config(tmp_path, "wrapped", tmp_path / "in")

    with ServedWorker(folder) as worker:
        created = worker.send("POST", "/pipelines", {"name": "wrapped", "config": config}, 201)
        assert created["name"] == "wrapped" and created["file"] == "wrapped.yaml"
        assert created["config"]["source"]["connector"] == "csv"
        written = yaml.safe_load((folder / "wrapped.yaml").read_text())
        assert written == {"name": "wrapped", **config}
        wait_until(lambda: sink_ids(tmp_path / "out" / "wrapped") == [1, 2, 3], what="rows")

        # config.name agreeing with name is fine too; a name taken is still 409.
        again = {"name": "wrapped", "config": {"name": "wrapped", **config}}
        assert "already exists" in worker.send("POST", "/pipelines", again, 409)["message"]

        # Validation reads the same shape, and writes nothing.
        checked = {"name": "checked", "config": config}
        valid = worker.send("PUT", "/pipelines/config/validate", checked, 200)
        assert valid == {"name": "checked", "error_count": 0, "configs": [], "problems": []}
        listed = worker.json("GET", "/pipelines?expand=status&expand=info")
        assert listed["wrapped"]["info"]["file"].endswith("wrapped.yaml")
        assert listed["wrapped"]["status"]["name"] == "wrapped"
    assert folder_files(folder) == ["orders.yaml", "wrapped.yaml"]


def test_a_wrapped_yaml_body_is_taken_too(tmp_path: Path) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    config = pipeline_config(tmp_path, "yaml-wrapped", tmp_path / "in")
    text = yaml.safe_dump({"name": "yaml-wrapped", "config": config}, sort_keys=False)

    with ServedWorker(folder) as worker:
        worker.send("POST", "/pipelines", text, 201, YAML)
        wait_until(lambda: sink_ids(tmp_path / "out" / "yaml-wrapped") == [1, 2], what="rows")
    assert yaml.safe_load((folder / "yaml-wrapped.yaml").read_text())["name"] == "yaml-wrapped"


def test_problems_of_a_wrapped_body_name_its_lines_and_the_pipelines_keys(
    tmp_path: Path,
) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    config = pipeline_config(tmp_path, "broken", tmp_path / "in")
    config["source"]["bogus_option"] = 1
    secret = "s3cr3t-pa55word"
    config["source"]["password"] = secret

    with ServedWorker(folder) as worker:
        text = json.dumps({"name": "broken", "config": config}, indent=2)
        invalid = worker.send("POST", "/pipelines", text, 422, JSON)
        assert invalid["error_code"] == 422
        bogus = next(p for p in invalid["problems"] if "bogus_option" in p["key"])
        assert bogus["key"] == "source.bogus_option"
        assert bogus["line"] == line_of(text, '"bogus_option"')
        assert bogus["text"].startswith(f"body:{bogus['line']}: source.bogus_option:")
        assert secret not in json.dumps(invalid)

        yaml_text = yaml.safe_dump({"name": "broken", "config": config}, sort_keys=False)
        from_yaml = worker.send("POST", "/pipelines", yaml_text, 422, YAML)
        bogus = next(p for p in from_yaml["problems"] if "bogus_option" in p["key"])
        assert bogus["line"] == line_of(yaml_text, "bogus_option:")

        good = pipeline_config(tmp_path, "ok", tmp_path / "in")
        text = json.dumps({"name": "one", "config": {"name": "other", **good}}, indent=2)
        disagree = worker.send("POST", "/pipelines", text, 422, JSON)
        [problem] = disagree["problems"]
        assert problem["key"] == "config.name"
        assert problem["line"] == line_of(text, '"name": "other"')
        assert '"other" does not agree with the name "one"' in problem["message"]

        not_a_map = worker.send("POST", "/pipelines", {"name": "x", "config": [1]}, 422)
        assert not_a_map["problems"][0]["key"] == "config"
        nameless = worker.send("POST", "/pipelines", {"config": good}, 422)
        assert [p["key"] for p in nameless["problems"]] == ["name"]
        duplicate = "name: dup\nconfig:\n  name: dup\n  topic: a\n  topic: b\n"
        twice = worker.send("POST", "/pipelines", duplicate, 422, YAML)
        assert twice["problems"][0]["text"].startswith("body:5: topic: duplicate key")

        # The old shape answers as before.
        plain = worker.send("POST", "/pipelines", {"name": "x", "config": good, "topic": "t"}, 422)
        assert any(p["key"] == "config" for p in plain["problems"])
    assert folder_files(folder) == ["orders.yaml"]


def test_put_takes_a_config_map_without_a_name(tmp_path: Path) -> None:
    folder = orders_folder(tmp_path, range(1, 3))
    config = pipeline_config(tmp_path, "bare", tmp_path / "in")

    with ServedWorker(folder) as worker:
        created = worker.send("PUT", "/pipelines/bare/config", config, 201)
        assert created["name"] == "bare"
        assert yaml.safe_load((folder / "bare.yaml").read_text()) == {"name": "bare", **config}
        wait_until(lambda: sink_ids(tmp_path / "out" / "bare") == [1, 2], what="rows")

        text = yaml.safe_dump({**config, "sinkk": {}}, sort_keys=False)
        invalid = worker.send("PUT", "/pipelines/bare/config", text, 422, YAML)
        [problem] = invalid["problems"]
        assert problem["text"].startswith(f"bare.yaml:{line_of(text, 'sinkk:')}: sinkk:")

        # A YAML body with its name is written as sent, comments and all.
        named = "# kept\n" + pipeline_text(tmp_path, "bare", tmp_path / "in")
        worker.send("PUT", "/pipelines/bare/config", named, 200, YAML)
        assert (folder / "bare.yaml").read_text() == named
