"""Airflow Connections and Variables as pipeline secrets: ``${airflow:conn_id}`` is the
Connection's URI, ``${airflow_var:name}`` the Variable's value.

The operator registers the resolvers before it loads a pipeline (``register_airflow_resolvers``)
so the values come from whatever secrets backend Airflow is configured with. The trigger
cannot call the synchronous lookups on the triggerer's event loop, and its child process
has no channel to Airflow: it fetches the references a pipeline file holds with
``fetch_references`` (asynchronously) and hands them to the child in its environment.
Every value is a secret of the pipeline (masked in its errors and logs like ``${file:...}``)
and is also given to Airflow's own log masker.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from omconnect.runtime.config.reference_resolvers import register_resolver

CONNECTION_PREFIX = "airflow"
VARIABLE_PREFIX = "airflow_var"
_REFERENCE = re.compile(r"(?<!\$)\$\{(airflow|airflow_var):([^}:-][^}]*)\}")


def connection_uri(conn_id: str) -> str:
    """The URI of Airflow Connection ``conn_id`` (``AIRFLOW_CONN_*``, the metadata database or
    a secrets backend)."""
    from airflow.sdk import Connection

    return str(Connection.get(conn_id).get_uri())


def variable_value(name: str) -> str:
    """The value of Airflow Variable ``name``."""
    from airflow.sdk import Variable

    return str(Variable.get(name))


def register_airflow_resolvers() -> None:
    """Resolve ``${airflow:...}`` and ``${airflow_var:...}`` from now on, in this process."""
    register_resolver(CONNECTION_PREFIX, connection_uri)
    register_resolver(VARIABLE_PREFIX, variable_value)


def references_in(pipeline: Path) -> set[str]:
    """The ``airflow:conn_id`` / ``airflow_var:name`` references written in a pipeline file."""
    text = pipeline.read_text(encoding="utf-8-sig")
    return {f"{prefix}:{name}" for prefix, name in _REFERENCE.findall(text)}


async def fetch_references(references: set[str]) -> dict[str, str]:
    """The values of ``references`` (as ``references_in`` names them), fetched without
    blocking the event loop; a reference that cannot be fetched is left out (the child then
    reports it where the file uses it)."""
    from airflow.sdk import Connection

    values: dict[str, str] = {}
    for reference in sorted(references):
        prefix, _, name = reference.partition(":")
        try:
            if prefix == CONNECTION_PREFIX:
                values[reference] = str((await Connection.async_get(name)).get_uri())
            else:
                values[reference] = await asyncio.to_thread(variable_value, name)
        except Exception:  # reported by the child, at the line of the file that uses it
            continue
    return values


def mask_in_airflow_logs(secrets: frozenset[str]) -> None:
    """Have Airflow mask ``secrets`` in the task's logs too (its masker covers the lines
    Airflow itself writes, such as an exception's traceback)."""
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        mask_secret(secret)
