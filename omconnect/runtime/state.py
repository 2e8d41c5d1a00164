"""A pipeline's ``state:``: the directory (or database URL) holding offsets, schemas and the
locks that keep one runner per pipeline (``STATE/locks/<pipeline>.lock``)."""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.registry import SchemaRegistry, SqliteSchemaRegistry

REGISTRY_FILE = "registry.sqlite"
LOCKS_DIRECTORY = "locks"


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


def pipeline_lock_path(state: str, pipeline: str) -> Path | None:
    """The lock file of ``pipeline`` in the state directory ``state`` (None for a database
    URL, which cannot hold file locks)."""
    if "://" in state:
        return None
    return Path(state) / LOCKS_DIRECTORY / f"{pipeline}.lock"
