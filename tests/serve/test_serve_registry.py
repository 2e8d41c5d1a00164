"""``serve`` answering as a Confluent Schema Registry at its root: confluent-kafka's own
``SchemaRegistryClient`` takes the worker's URL, and ``omconnect serve --state`` chooses the
embedded registry it serves."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from omconnect.runtime.cli import serve_cmd
from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from omconnect.runtime.state.schema_registry.rest_api import CONTENT_TYPE
from tests.support.served_worker import ServedWorker, ServeProcess

ORDERS = {"type": "record", "name": "orders", "fields": [{"name": "id", "type": "long"}]}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
AMOUNT = {"name": "amount", "type": "double"}


def avro(*extra: dict[str, object]) -> Schema:
    fields = [*ORDERS["fields"], *extra]  # type: ignore[misc]
    return Schema(json.dumps({**ORDERS, "fields": fields}), "AVRO")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[ServedWorker]:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    registry = SqliteSchemaRegistry(tmp_path / "state" / "registry.sqlite")
    with ServedWorker(folder, registry=registry) as served:
        yield served
    registry.close()


def test_confluents_client_works_against_the_worker_url(worker: ServedWorker) -> None:
    client = SchemaRegistryClient({"url": worker.url, "max.retries": 0})
    first = client.register_schema("orders-value", avro())
    second = client.register_schema("orders-value", avro(NOTE))
    assert json.loads(client.get_schema(first).schema_str) == ORDERS
    assert client.get_schema_types() == ["AVRO"]
    assert client.get_subjects() == ["orders-value"]
    assert client.get_versions("orders-value") == [1, 2]
    latest = client.get_latest_version("orders-value")
    assert (latest.schema_id, latest.version, latest.subject) == (second, 2, "orders-value")
    assert client.get_version("orders-value", 1).schema_id == first
    found = client.lookup_schema("orders-value", avro(NOTE))
    assert (found.schema_id, found.version) == (second, 2)
    assert [(v.subject, v.version) for v in client.get_schema_versions(first)] == [
        ("orders-value", 1)
    ]

    assert client.test_compatibility("orders-value", avro(NOTE, AMOUNT)) is False
    assert client.set_compatibility("orders-value", "NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility("orders-value") == "NONE"
    assert client.test_compatibility("orders-value", avro(NOTE, AMOUNT)) is True
    assert client.get_compatibility() == "BACKWARD"

    assert client.delete_version("orders-value", 2) == 2
    assert client.get_versions("orders-value") == [1]
    assert client.delete_subject("orders-value") == [1]
    assert client.delete_subject("orders-value", permanent=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_versions("orders-value")
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)


def test_a_refusal_reaches_confluents_client_as_a_409(worker: ServedWorker) -> None:
    client = SchemaRegistryClient({"url": worker.url, "max.retries": 0})
    client.register_schema("orders-value", avro())
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("orders-value", avro(AMOUNT))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "orders.amount" in refused.value.error_message
    with pytest.raises(SchemaRegistryError) as protobuf:
        client.register_schema("p-value", Schema('syntax = "proto3";', "PROTOBUF"))
    assert (protobuf.value.http_status_code, protobuf.value.error_code) == (422, 42201)


def test_registry_answers_carry_confluents_content_type(worker: ServedWorker) -> None:
    status, headers, body = worker.request("GET", "/config")
    assert (status, headers["Content-Type"], json.loads(body)) == (
        200,
        CONTENT_TYPE,
        {"compatibilityLevel": "BACKWARD"},
    )
    status, headers, body = worker.request("GET", "/schemas/ids/7")
    assert (status, headers["Content-Type"]) == (404, CONTENT_TYPE)
    assert json.loads(body) == {"error_code": 40403, "message": "Schema 7 not found"}
    assert worker.json("GET", "/health") == {"status": "ok"}, "serve's own API is still there"


def test_without_a_registry_the_paths_are_not_found(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    with ServedWorker(folder) as served:
        status, _, _ = served.request("GET", "/subjects")
        assert status == 404


def test_serve_state_names_the_registry_it_serves(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    SqliteSchemaRegistry(tmp_path / "elsewhere" / "registry.sqlite").register("kept-value", "long")
    env: dict[str, str | None] = {"OMCONNECT_API_TOKEN": "sesame", "OMCONNECT_STATE": None}
    with ServeProcess(folder, tmp_path, "--state", "elsewhere", env=env) as served:
        request = urllib.request.Request(
            served.url + "/subjects", headers={"Authorization": "Bearer sesame"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response) == ["kept-value"]
    assert not (tmp_path / ".omconnect").exists(), "only the named state is opened"


def test_a_state_that_cannot_be_opened_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (tmp_path / "taken").write_text("a file where the state directory would be")
    code = serve_cmd.main([str(folder), "--port", "0", "--state", str(tmp_path / "taken")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot open the schema registry of --state {tmp_path / 'taken'}: " in err
    assert "Traceback" not in err
