"""omconnect as an Airflow provider (the ``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """What Airflow's provider manager lists for omconnect."""
    return {
        "package-name": "omconnect",
        "name": "omconnect",
        "description": "Runs omconnect pipeline files as Airflow tasks and DAGs.",
        "versions": ["0.1.0"],
    }
