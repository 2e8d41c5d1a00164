"""A pipeline's ``state:``: the directory (or database URL) holding offsets and schemas."""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.registry import SchemaRegistry, SqliteSchemaRegistry

REGISTRY_FILE = "registry.sqlite"


def open_schema_registry(state: str) -> SchemaRegistry:
    """The embedded schema registry of ``state`` (a directory: ``STATE/registry.sqlite``)."""
    if "://" in state:
        raise ValueError(
            f"state {state.split('://')[0]}://... is not available for the schema registry yet;"
            " use a directory"
        )
    directory = Path(state)
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteSchemaRegistry(directory / REGISTRY_FILE)
