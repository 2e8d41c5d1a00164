"""Airflow integration: pipeline files as Airflow tasks and DAGs (the ``[airflow]`` extra).

``OmconnectRunOperator`` runs one pipeline once (deferrable for streaming sources, through
``OmconnectRunTrigger``); ``dags_from_folder`` makes a DAG of every scheduled pipeline file;
``register_airflow_resolvers`` makes ``${airflow:conn_id}`` and ``${airflow_var:name}``
resolve. Names are imported on first use, so that Airflow's providers manager can import
``provider`` without importing Airflow's task SDK through this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omconnect.runtime.airflow.dag_factory import dags_from_folder
    from omconnect.runtime.airflow.operators import OmconnectRunOperator
    from omconnect.runtime.airflow.secrets import register_airflow_resolvers
    from omconnect.runtime.airflow.triggers import OmconnectRunTrigger

__all__ = [
    "OmconnectRunOperator",
    "OmconnectRunTrigger",
    "dags_from_folder",
    "register_airflow_resolvers",
]

_MODULES = {
    "OmconnectRunOperator": "operators",
    "OmconnectRunTrigger": "triggers",
    "dags_from_folder": "dag_factory",
    "register_airflow_resolvers": "secrets",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
