"""The embedded schema registry of every state backend (a directory's SQLite file, a Postgres
schema): ids, versions, idempotence, modes, and several processes registering at once.
Deletes and per-subject modes are in ``test_registry_contract``, which the HTTP client runs
too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from omconnect.runtime.state import open_schema_registry, open_state
from omconnect.runtime.state.schema_registry import (
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistry,
    key_subject,
    value_subject,
)


def record(*fields: dict) -> dict:
    return {"type": "record", "name": "orders", "fields": list(fields)}


ID = {"name": "id", "type": "long"}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
AMOUNT = {"name": "amount", "type": "double"}


@pytest.fixture
def registry(state: str) -> Iterator[Any]:
    opened = open_schema_registry(state)
    yield opened
    opened.close()


def test_register_is_idempotent_and_ids_are_global(registry: Any) -> None:
    assert isinstance(registry, SchemaRegistry)
    first = registry.register("orders-value", record(ID))
    assert registry.register("orders-value", record(ID)) == first
    assert registry.versions("orders-value") == [1]
    second = registry.register("orders-value", record(ID, NOTE))
    assert second > first
    assert registry.versions("orders-value") == [1, 2]
    # the same schema under another subject keeps its id
    assert registry.register("payments-value", record(ID)) == first
    assert registry.subjects() == ["orders-value", "payments-value"]
    assert registry.get(second) == record(ID, NOTE)
    assert registry.latest("orders-value") == (second, 2, record(ID, NOTE))
    assert registry.version("orders-value", 1) == (first, record(ID))
    assert registry.version("orders-value", 3) is None
    assert registry.latest("nothing-value") is None
    with pytest.raises(SchemaNotFoundError):
        registry.get(999)


def test_a_schema_avro_rejects_is_refused(registry: Any) -> None:
    with pytest.raises(ValueError, match="subject 'bad-value': not a valid Avro schema"):
        registry.register("bad-value", {"type": "record", "name": "r", "fields": [{"name": "x"}]})
    assert registry.subjects() == []


def test_state_survives_reopening(state: str) -> None:
    first = open_schema_registry(state)
    schema_id = first.register("t-value", record(ID))
    first.close()
    reopened = open_state(state).open_existing_schema_registry()
    assert reopened is not None
    assert reopened.get(schema_id) == record(ID)
    assert reopened.register("t-value", record(ID)) == schema_id
    reopened.close()


def test_backward_default_refuses_a_new_field_without_default(registry: Any) -> None:
    registry.register("orders-value", record(ID))
    with pytest.raises(IncompatibleSchemaError) as refused:
        registry.register("orders-value", record(ID, AMOUNT))
    assert "orders.amount" in str(refused.value) and "BACKWARD" in str(refused.value)
    assert registry.versions("orders-value") == [1]


def test_backward_accepts_promotions_removed_fields_and_nullable_widening(registry: Any) -> None:
    registry.register("v", record({"name": "id", "type": "int"}, {"name": "x", "type": "float"}))
    registry.register("v", record({"name": "id", "type": "long"}, {"name": "x", "type": "double"}))
    registry.register("v", record({"name": "id", "type": ["null", "long"]}))
    assert registry.versions("v") == [1, 2, 3]


def test_forward_full_and_none(registry: Any) -> None:
    registry.set_compatibility("FORWARD", "f")
    registry.register("f", record(ID, AMOUNT))
    registry.register("f", record(ID, AMOUNT, {"name": "extra", "type": "string"}))
    with pytest.raises(IncompatibleSchemaError, match="amount"):
        registry.register("f", record(ID))  # old readers need amount, which has no default
    registry.set_compatibility(CompatibilityMode.FULL, "g")
    registry.register("g", record(ID))
    registry.register("g", record(ID, NOTE))
    with pytest.raises(IncompatibleSchemaError):
        registry.register("g", record({"name": "id", "type": "string"}))
    registry.set_compatibility("none", "g")
    registry.register("g", record({"name": "id", "type": "string"}))
    assert registry.compatibility("g") == CompatibilityMode.NONE
    assert registry.compatibility("other") == CompatibilityMode.BACKWARD
    with pytest.raises(ValueError):
        registry.set_compatibility("SIDEWAYS", "g")


def test_transitive_checks_every_version(registry: Any) -> None:
    registry.set_compatibility("BACKWARD_TRANSITIVE")  # the registry-wide default
    registry.register("t", record(ID, AMOUNT))
    registry.register("t", record(ID))
    # readable for v2's data, but not for v1's (amount double -> string)
    with pytest.raises(IncompatibleSchemaError, match="version 1"):
        registry.register("t", record(ID, {"name": "amount", "type": "string", "default": ""}))
    registry.set_compatibility("BACKWARD", "t")
    registry.register("t", record(ID, {"name": "amount", "type": "string", "default": ""}))


def test_subject_names_follow_topic_name_strategy() -> None:
    assert value_subject("orders") == "orders-value"
    assert key_subject("orders") == "orders-key"


_WORKER = """
import json, sys
from omconnect.runtime.state import open_schema_registry
state, worker = sys.argv[1], sys.argv[2]
registry = open_schema_registry(state)
base = {"name": "id", "type": "long"}
note = {"name": "note", "type": ["null", "string"], "default": None}
ids = []
for version in range(15):
    extra = [{"name": f"f{i}", "type": ["null", "long"], "default": None} for i in range(version)]
    schema = {"type": "record", "name": "orders", "fields": [base, *extra]}
    ids.append(registry.register("shared-value", schema))
    own = {"type": "record", "name": "orders", "fields": [base, note]}
    ids.append(registry.register(f"own-{worker}-value", own))
print(json.dumps(ids))
"""


def test_two_processes_register_concurrently(state: str) -> None:
    open_schema_registry(state).close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, state, str(w)], stdout=subprocess.PIPE, text=True
        )
        for w in (1, 2)
    ]
    outputs = [w.communicate(timeout=60)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    results = [json.loads(out) for out in outputs]
    assert results[0] == results[1]  # the same schemas got the same ids in both processes
    registry = open_schema_registry(state)
    assert registry.versions("shared-value") == list(range(1, 16))
    assert len(set(results[0][0::2])) == 15
    registry.close()
