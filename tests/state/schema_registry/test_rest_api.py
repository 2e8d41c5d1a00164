"""Confluent's Schema Registry REST API over the embedded registry, without HTTP: paths, JSON
shapes and error codes as Confluent's registry answers them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omconnect.runtime.state.schema_registry import SchemaRegistryApi, SqliteSchemaRegistry


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "orders", "fields": list(fields)}


ID = {"name": "id", "type": "long"}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
AMOUNT = {"name": "amount", "type": "double"}


class Api:
    """``SchemaRegistryApi`` over a fresh SQLite registry, called as a server would."""

    def __init__(self, path: Path) -> None:
        self.registry = SqliteSchemaRegistry(path)
        self.api = SchemaRegistryApi(self.registry)

    def __call__(
        self, method: str, path: str, body: Any = None, expect: int = 200, **query: str
    ) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        answer = self.api.handle(method, path, {k: [v] for k, v in query.items()}, raw)
        assert answer.status == expect, answer.body
        assert json.loads(answer.encoded()) == answer.body
        return answer.body

    def error(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, int]:
        raw = json.dumps(body).encode() if body is not None else b""
        answer = self.api.handle(method, path, {k: [v] for k, v in query.items()}, raw)
        assert set(answer.body) == {"error_code", "message"}, answer.body
        return answer.status, answer.body["error_code"]

    def register(self, subject: str, schema: Any, expect: int = 200) -> Any:
        return self("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(schema)}, expect)


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(tmp_path / "registry.sqlite")


def test_register_read_back_and_look_up(api: Api) -> None:
    first = api.register("orders-value", record(ID))["id"]
    assert api.register("orders-value", record(ID)) == {"id": first}
    second = api.register("orders-value", record(ID, NOTE))["id"]
    assert api.register("payments-value", record(ID)) == {"id": first}

    assert api("GET", "/schemas/types") == ["AVRO"]
    assert json.loads(api("GET", f"/schemas/ids/{first}")["schema"]) == record(ID)
    assert api("GET", f"/schemas/ids/{second}/schema") == record(ID, NOTE)
    assert api("GET", "/subjects") == ["orders-value", "payments-value"]
    assert api("GET", "/subjects", subjectPrefix="pay") == ["payments-value"]
    assert api("GET", "/subjects/orders-value/versions") == [1, 2]
    latest = api("GET", "/subjects/orders-value/versions/latest")
    assert set(latest) == {"subject", "version", "id", "schema"}  # no schemaType for Avro
    assert (latest["subject"], latest["version"], latest["id"]) == ("orders-value", 2, second)
    assert api("GET", "/subjects/orders-value/versions/-1")["version"] == 2
    assert api("GET", "/subjects/orders-value/versions/1/schema") == record(ID)
    assert api("GET", "/subjects/orders-value/versions/1/referencedby") == []
    assert api("GET", f"/schemas/ids/{first}/subjects") == ["orders-value", "payments-value"]
    assert api("GET", f"/schemas/ids/{first}/versions") == [
        {"subject": "orders-value", "version": 1},
        {"subject": "payments-value", "version": 1},
    ]
    # a lookup ignores key order and spacing: schemas are compared by their canonical JSON
    spaced = {"schema": json.dumps(record(ID, NOTE), indent=2, sort_keys=False)}
    found = api("POST", "/subjects/orders-value", spaced)
    assert (found["id"], found["version"]) == (second, 2)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/schemas/ids/99", None, 404, 40403),
        ("GET", "/subjects/nothing/versions", None, 404, 40401),
        ("GET", "/subjects/nothing/versions/1", None, 404, 40401),
        ("GET", "/subjects/orders-value/versions/7", None, 404, 40402),
        ("GET", "/subjects/orders-value/versions/0", None, 422, 42202),
        ("GET", "/subjects/orders-value/versions/first", None, 422, 42202),
        ("POST", "/subjects/nothing", {"schema": '"long"'}, 404, 40401),
        ("POST", "/subjects/orders-value", {"schema": '"long"'}, 404, 40403),
        ("POST", "/subjects/s/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": '{"type": "recor"}'}, 422, 42201),
        ("POST", "/subjects/s/versions", {}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "{}", "schemaType": "PROTOBUF"}, 422, 42201),
        ("POST", "/subjects/s/versions", {"schema": "{}", "schemaType": "JSON"}, 422, 42201),
        (
            "POST",
            "/subjects/s/versions",
            {"schema": '"long"', "references": [{"name": "a", "subject": "b", "version": 1}]},
            422,
            42201,
        ),
        ("POST", "/subjects/s/versions", {"schema": '"long"', "id": 5}, 422, 42205),
        ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
        ("GET", "/config/orders-value", None, 404, 40408),
        ("GET", "/nowhere", None, 404, 404),
        ("GET", "/subjects/orders-value/versions/1/extra", None, 404, 404),
        ("PUT", "/subjects", None, 405, 405),
        ("POST", "/subjects/orders-value/versions/1", None, 405, 405),
    ],
)
def test_errors_carry_confluents_codes(
    api: Api, method: str, path: str, body: Any, status: int, code: int
) -> None:
    api.register("orders-value", record(ID))
    assert api.error(method, path, body) == (status, code)


def test_a_body_that_is_not_json_is_a_bad_request(api: Api) -> None:
    answer = api.api.handle("POST", "/subjects/s/versions", {}, b"{oops")
    assert answer.status == 400 and "not JSON" in answer.body["message"]


def test_an_incompatible_schema_is_a_409_naming_the_field(api: Api) -> None:
    api.register("orders-value", record(ID))
    refused = api.register("orders-value", record(ID, AMOUNT), expect=409)
    assert refused["error_code"] == 409
    assert "incompatible with an earlier schema" in refused["message"]
    assert "orders.amount" in refused["message"] and "BACKWARD" in refused["message"]


def test_compatibility_config_global_and_per_subject(api: Api) -> None:
    assert api("GET", "/config") == {"compatibilityLevel": "BACKWARD"}
    assert api("PUT", "/config", {"compatibility": "full"}) == {"compatibility": "FULL"}
    assert api("GET", "/config") == {"compatibilityLevel": "FULL"}
    assert api("GET", "/config/orders-value", defaultToGlobal="true") == {
        "compatibilityLevel": "FULL"
    }
    assert api("PUT", "/config/orders-value", {"compatibility": "NONE"}) == {
        "compatibility": "NONE"
    }
    assert api("GET", "/config/orders-value") == {"compatibilityLevel": "NONE"}
    api.register("orders-value", record(ID))
    api.register("orders-value", record({"name": "id", "type": "string"}))  # NONE allows it
    assert api("DELETE", "/config/orders-value") == {"compatibilityLevel": "NONE"}
    assert api.error("GET", "/config/orders-value") == (404, 40408)
    assert api("DELETE", "/config") == {"compatibilityLevel": "FULL"}
    assert api("GET", "/config") == {"compatibilityLevel": "BACKWARD"}
    assert api.error("DELETE", "/config/never-registered") == (404, 40401)


def test_compatibility_checks_do_not_register(api: Api) -> None:
    path = "/compatibility/subjects/orders-value/versions"
    assert api("POST", f"{path}/latest", {"schema": json.dumps(record(ID))}) == {
        "is_compatible": True
    }  # nothing registered yet: anything may come first
    api.register("orders-value", record(ID, AMOUNT))
    api.register("orders-value", record(ID))
    api("PUT", "/config/orders-value", {"compatibility": "BACKWARD_TRANSITIVE"})
    amount_text = {"name": "amount", "type": "string", "default": ""}
    candidate = {"schema": json.dumps(record(ID, amount_text))}
    # readable for version 2's data, not for version 1's (amount double -> string)
    assert api("POST", f"{path}/2", candidate) == {"is_compatible": True}
    assert api("POST", f"{path}/1", candidate) == {"is_compatible": False}
    verbose = api("POST", f"{path}/latest", candidate, verbose="true")
    assert verbose["is_compatible"] is False
    assert any("version 1" in m and "orders.amount" in m for m in verbose["messages"])
    assert api("POST", path, candidate)["is_compatible"] is False
    assert api.error("POST", f"{path}/9", candidate) == (404, 40402)
    assert api.error("POST", "/compatibility/subjects/none/versions/1", candidate) == (404, 40401)
    assert api("GET", "/subjects/orders-value/versions") == [1, 2]


def test_soft_then_permanent_deletes_as_confluent(api: Api) -> None:
    first = api.register("orders-value", record(ID))["id"]
    api.register("orders-value", record(ID, NOTE))
    api("PUT", "/config/orders-value", {"compatibility": "FULL"})

    assert api.error("DELETE", "/subjects/orders-value/versions/2", permanent="true") == (
        404,
        40407,
    )
    assert api("DELETE", "/subjects/orders-value/versions/latest") == 2
    assert api.error("DELETE", "/subjects/orders-value/versions/2") == (404, 40406)
    assert api("GET", "/subjects/orders-value/versions") == [1]
    assert api("GET", "/subjects/orders-value/versions", deleted="true") == [1, 2]
    assert api("GET", "/subjects/orders-value/versions", deleted_only="true") == [2]
    assert api.error("GET", "/subjects/orders-value/versions/2") == (404, 40402)
    assert api("GET", "/subjects/orders-value/versions/2", deleted="true")["version"] == 2
    assert api("GET", "/subjects/orders-value/versions/latest")["version"] == 1
    # the deleted version's schema registers again as a new version, with its old id
    again = api.register("orders-value", record(ID, NOTE))["id"]
    assert api("GET", "/subjects/orders-value/versions") == [1, 3]

    assert api.error("DELETE", "/subjects/orders-value", permanent="true") == (404, 40405)
    assert api("DELETE", "/subjects/orders-value") == [1, 3]
    assert api.error("DELETE", "/subjects/orders-value") == (404, 40404)
    assert api("GET", "/subjects") == []
    assert api("GET", "/subjects", deleted="true") == ["orders-value"]
    assert api("GET", "/subjects", deleted_only="true") == ["orders-value"]
    assert api.error("GET", "/config/orders-value") == (404, 40408), "a soft delete drops it"
    assert api("DELETE", "/subjects/orders-value", permanent="true") == [1, 2, 3]
    assert api.error("DELETE", "/subjects/orders-value") == (404, 40401)
    assert api("GET", "/subjects", deleted="true") == []
    # data written with a deleted schema stays readable: its id keeps answering
    assert api("GET", f"/schemas/ids/{first}/schema") == record(ID)
    assert api("GET", f"/schemas/ids/{again}/schema") == record(ID, NOTE)
    assert api.register("orders-value", record(ID))["id"] == first
    assert api("GET", "/subjects/orders-value/versions") == [1]


def test_pagination_and_the_mode(api: Api) -> None:
    for name in ("a", "b", "c"):
        api.register(name, "long")
    assert api("GET", "/subjects", offset="1", limit="1") == ["b"]
    assert api("GET", "/subjects", offset="1", limit="-1") == ["b", "c"]
    assert api.error("GET", "/subjects", offset="x") == (400, 400)
    assert api("GET", "/mode") == {"mode": "READWRITE"}


def test_a_failing_store_is_a_50001_without_details(api: Api) -> None:
    api.registry.close()
    status, code = api.error("GET", "/subjects")
    assert (status, code) == (500, 50001)


def test_handles_only_the_registry_paths() -> None:
    for path in ("/subjects", "/schemas/ids/1", "/config", "/compatibility/subjects/s/versions"):
        assert SchemaRegistryApi.handles(path)
    for path in ("/", "/health", "/pipelines", "/metrics", "/subjectsx"):
        assert not SchemaRegistryApi.handles(path)
