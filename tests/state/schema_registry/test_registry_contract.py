"""The ``SchemaRegistry`` contract's deletes and per-subject modes, one test body for every
implementation: the embedded SQLite and Postgres registries, and the HTTP client against
``serve``'s REST API (add a backend to ``REGISTRIES`` and to ``registry``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omconnect.runtime.state import open_schema_registry
from omconnect.runtime.state.schema_registry import (
    CompatibilityMode,
    HttpSchemaRegistry,
    IncompatibleSchemaError,
    SchemaRegistry,
    SqliteSchemaRegistry,
)

REGISTRIES = ("sqlite", "http", "postgresql")

ID = {"name": "id", "type": "long"}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
AMOUNT = {"name": "amount", "type": "double"}


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "orders", "fields": list(fields)}


@pytest.fixture(params=REGISTRIES)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> SchemaRegistry:
    if request.param == "sqlite":
        return SqliteSchemaRegistry(tmp_path / "registry.sqlite")
    if request.param == "postgresql":
        return open_schema_registry(request.getfixturevalue("postgres_state"))
    return HttpSchemaRegistry(request.getfixturevalue("served_registry").url)


def test_a_soft_deleted_version_is_hidden_but_readable(registry: SchemaRegistry) -> None:
    first = registry.register("orders-value", record(ID))
    second = registry.register("orders-value", record(ID, NOTE))

    registry.delete_versions("orders-value", [2])

    assert registry.versions("orders-value") == [1]
    assert registry.versions("orders-value", deleted=True) == [1, 2]
    assert registry.latest("orders-value") == (first, 1, record(ID))
    assert registry.version("orders-value", 2) is None
    assert registry.version("orders-value", 2, deleted=True) == (second, record(ID, NOTE))
    assert registry.get(second) == record(ID, NOTE)
    # registering it again makes a new version (numbers never go back), with the same id
    assert registry.register("orders-value", record(ID, NOTE)) == second
    assert registry.versions("orders-value", deleted=True) == [1, 2, 3]


def test_deleting_every_version_hides_the_subject(registry: SchemaRegistry) -> None:
    registry.register("orders-value", record(ID))
    registry.register("other-value", record(ID))
    registry.delete_versions("orders-value", [1, 7])  # unknown versions are ignored

    assert registry.subjects() == ["other-value"]
    assert registry.subjects(deleted=True) == ["orders-value", "other-value"]
    assert registry.latest("orders-value") is None

    registry.delete_versions("orders-value", [1], permanent=True)
    registry.delete_versions("other-value", [1], permanent=True)  # live: removed all the same
    assert registry.subjects(deleted=True) == []
    assert registry.versions("orders-value", deleted=True) == []


def test_deleted_versions_leave_the_compatibility_check(registry: SchemaRegistry) -> None:
    registry.set_compatibility("BACKWARD_TRANSITIVE", "t")
    registry.register("t", record(ID, AMOUNT))
    registry.register("t", record(ID))
    text_amount = record(ID, {"name": "amount", "type": "string", "default": ""})
    with pytest.raises(IncompatibleSchemaError, match="version 1"):
        registry.register("t", text_amount)
    registry.delete_versions("t", [1])
    registry.register("t", text_amount)
    assert registry.versions("t") == [2, 3]


def test_a_subjects_own_mode_and_the_default(registry: SchemaRegistry) -> None:
    assert registry.subject_compatibility("s") is None
    registry.set_compatibility("full", "s")
    registry.set_compatibility(CompatibilityMode.FORWARD)
    assert registry.subject_compatibility("s") == CompatibilityMode.FULL
    assert registry.compatibility("s") == CompatibilityMode.FULL
    assert registry.compatibility("other") == CompatibilityMode.FORWARD

    registry.set_compatibility(None, "s")
    assert registry.subject_compatibility("s") is None
    assert registry.compatibility("s") == CompatibilityMode.FORWARD
    registry.set_compatibility(None)
    assert registry.compatibility() == CompatibilityMode.BACKWARD
    assert registry.compatibility("s") == CompatibilityMode.BACKWARD


CHANGES = {
    "add a field with a default": record(ID, AMOUNT, NOTE),
    "add a field without a default": record(ID, AMOUNT, {"name": "qty", "type": "long"}),
    "drop a field without a default": record(ID),
}
ALLOWED = {  # which changes of record(ID, AMOUNT) each mode lets through
    "BACKWARD": {"add a field with a default", "drop a field without a default"},
    "FORWARD": {"add a field with a default", "add a field without a default"},
    "FULL": {"add a field with a default"},
    "NONE": set(CHANGES),
}


@pytest.mark.parametrize("mode", list(CompatibilityMode))
@pytest.mark.parametrize("change", list(CHANGES))
def test_every_mode_refuses_what_it_forbids(
    registry: SchemaRegistry, mode: CompatibilityMode, change: str
) -> None:
    registry.set_compatibility(mode, "orders-value")
    registry.register("orders-value", record(ID, AMOUNT))
    if change in ALLOWED[mode.value.removesuffix("_TRANSITIVE")]:
        registry.register("orders-value", CHANGES[change])
        assert registry.versions("orders-value") == [1, 2]
    else:
        with pytest.raises(IncompatibleSchemaError, match=mode.value):
            registry.register("orders-value", CHANGES[change])
        assert registry.versions("orders-value") == [1]
